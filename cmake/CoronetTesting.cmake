# coronet_add_layer_tests(<layer>)
#
# Called from tests/<layer>/CMakeLists.txt. Builds ONE doctest executable <layer>_tests from
# tests/<layer>/*_test.cpp (globbed, CONFIGURE_DEPENDS) linked with coronet::<layer>,
# coronet_testing (tests/testing helpers, include as <testing/...>) and the shared doctest main
# (tests/doctest_main.cpp). Test files must not define DOCTEST_CONFIG_IMPLEMENT*.
#
# Every doctest case becomes its own CTest test, so every case gets a hard TIMEOUT that really
# kills a hang; labels are the case's doctest suite plus <layer>. The cases are listed after each
# link by cmake/doctest_cases.cmake, which starts the executable once (doctest's own
# doctest_discover_tests starts it once per case for the labels).
#
# With CORONET_UNITY_TESTS (default ON) a layer's test files are compiled in batches (CMake's
# unity build): the headers and the templates they instantiate are compiled once per batch, not
# once per file, which cuts the build of the tests to about a third. A test file therefore must
# not define a name at namespace scope that another file of its layer defines too (give helpers
# names that say what they are, or put them in a named namespace).
# The layer's private src/ folder is on the include path so tests can reach private headers;
# a non-inline private function a test calls must be CORONET_<LAYER>_EXPORT (shared builds hide
# everything else).
include_guard(GLOBAL)
find_package(doctest 2.4 REQUIRED CONFIG)   # Debian: doctest-dev, /usr/lib/cmake/doctest

set(CORONET_TEST_TIMEOUT 60 CACHE STRING "CTest TIMEOUT (seconds) of each doctest case")
option(CORONET_UNITY_TESTS "Compile each layer's test files in batches (a unity build)" ON)
set(CORONET_UNITY_TESTS_BATCH 8 CACHE STRING "Test files per batch when CORONET_UNITY_TESTS is ON")

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
    if(CORONET_UNITY_TESTS)
        set_target_properties(${exe} PROPERTIES
            UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE ${CORONET_UNITY_TESTS_BATCH})
        # A file that brings a whole layer's namespace in (`using namespace coronet::ws;`) would
        # bring it into the files after it in its batch too: it compiles alone.
        foreach(source IN LISTS test_sources)
            file(STRINGS "${source}" layer_using_directive
                REGEX "^using namespace coronet::(core|http|ws|http_ws|ws_redis);" LIMIT_COUNT 1)
            if(layer_using_directive)
                set_source_files_properties("${source}" PROPERTIES SKIP_UNITY_BUILD_INCLUSION ON)
            endif()
        endforeach()
        # g++ warns of a type from an anonymous namespace inside another type only outside the
        # main file, which every test file is in a batch.
        if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
            target_compile_options(${exe} PRIVATE -Wno-subobject-linkage)
        endif()
    endif()

    # The cases, listed after each link; CTest includes the list it wrote (or, before the first
    # build, a test that says the executable is not built).
    set(cases_file "${CMAKE_CURRENT_BINARY_DIR}/${exe}_cases.cmake")
    set(include_file "${CMAKE_CURRENT_BINARY_DIR}/${exe}_include.cmake")
    add_custom_command(TARGET ${exe} POST_BUILD
        BYPRODUCTS "${cases_file}"
        COMMAND "${CMAKE_COMMAND}"
            -D "TEST_EXECUTABLE=$<TARGET_FILE:${exe}>"
            -D "LAYER=${layer}"
            -D "TIMEOUT=${CORONET_TEST_TIMEOUT}"
            -D "WORKING_DIR=${CMAKE_CURRENT_BINARY_DIR}"
            -D "CTEST_FILE=${cases_file}"
            -P "${PROJECT_SOURCE_DIR}/cmake/doctest_cases.cmake"
        VERBATIM)
    file(WRITE "${include_file}"
        "if(EXISTS \"${cases_file}\")\n"
        "    include(\"${cases_file}\")\n"
        "else()\n"
        "    add_test(${exe}_NOT_BUILT ${exe}_NOT_BUILT)\n"
        "    set_tests_properties(${exe}_NOT_BUILT PROPERTIES LABELS ${layer})\n"
        "endif()\n")
    set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${include_file}")
endfunction()
