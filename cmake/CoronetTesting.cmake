# coronet_add_layer_tests(<layer>)
#
# Called from tests/<layer>/CMakeLists.txt. Builds ONE doctest executable <layer>_tests from
# tests/<layer>/*_test.cpp (globbed, CONFIGURE_DEPENDS) linked with coronet::<layer>,
# coronet_testing (tests/testing helpers, include as <testing/...>) and the shared doctest main
# (tests/doctest_main.cpp). Test files must not define DOCTEST_CONFIG_IMPLEMENT*.
#
# Every doctest case becomes its own CTest test (doctest_discover_tests), so every case gets a
# hard TIMEOUT that really kills a hang; labels are the case's doctest suite(s) plus <layer>.
# The layer's private src/ folder is on the include path so tests can reach private headers;
# a non-inline private function a test calls must be CORONET_<LAYER>_EXPORT (shared builds hide
# everything else).
include_guard(GLOBAL)
find_package(doctest 2.4 REQUIRED CONFIG)   # Debian: doctest-dev, /usr/lib/cmake/doctest
include("${doctest_DIR}/doctest.cmake")     # doctest_discover_tests()

set(CORONET_TEST_TIMEOUT 60 CACHE STRING "CTest TIMEOUT (seconds) of each doctest case")

function(coronet_add_layer_tests layer)
    file(GLOB test_sources CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/*_test.cpp")
    if(NOT test_sources)
        message(STATUS "coronet: no ${layer} tests yet (${CMAKE_CURRENT_SOURCE_DIR}/*_test.cpp)")
        return()
    endif()

    set(exe ${layer}_tests)
    add_executable(${exe} ${test_sources})
    set_target_properties(${exe} PROPERTIES CXX_EXTENSIONS OFF)
    target_include_directories(${exe} PRIVATE "${PROJECT_SOURCE_DIR}/${layer}/src")
    target_link_libraries(${exe} PRIVATE
        coronet::${layer} coronet_testing coronet_doctest_main doctest::doctest)
    coronet_target_warnings(${exe})

    # CTest appends LABELS, so each case carries the layer and its doctest suite(s).
    doctest_discover_tests(${exe}
        ADD_LABELS 1
        PROPERTIES TIMEOUT ${CORONET_TEST_TIMEOUT} LABELS ${layer})
endfunction()
