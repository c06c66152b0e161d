# cmake -DBUILD_DIR=<coronet build> -DCONSUMER_DIR=<tests/install> -DWORK_DIR=<scratch>
#       -DGENERATOR=<gen> -DCXX=<compiler> -DSTATIC=<bool> -P run_install_test.cmake
#
# Installs the build into a scratch prefix, then proves both consumer paths work against it:
#   1. find_package(coronet) + coronet::http_ws (configure, build and run tests/install/), and
#      coronet::ws_redis when the build has it
#   2. pkg-config --cflags --libs coronet-http_ws (compile, link and run tests/install/main.cpp,
#      with no LD_LIBRARY_PATH: the .pc files carry the run path)
foreach(var IN ITEMS BUILD_DIR CONSUMER_DIR WORK_DIR GENERATOR CXX STATIC)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "run_install_test.cmake: -D${var}=... is required")
    endif()
endforeach()

function(run)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE result)
    if(NOT result STREQUAL "0")
        string(REPLACE ";" " " shown "${ARGN}")
        message(FATAL_ERROR "failed (${result}): ${shown}")
    endif()
endfunction()

set(prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")

message(STATUS "installing into ${prefix}")
run("${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}")

message(STATUS "consumer via find_package(coronet)")
run("${CMAKE_COMMAND}" -S "${CONSUMER_DIR}" -B "${WORK_DIR}/consumer" -G "${GENERATOR}"
    "-DCMAKE_CXX_COMPILER=${CXX}" "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_BUILD_TYPE=Debug
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
run("${CMAKE_COMMAND}" --build "${WORK_DIR}/consumer")
run("${CMAKE_COMMAND}" -E env --unset=LD_LIBRARY_PATH "${WORK_DIR}/consumer/consumer")
if(EXISTS "${WORK_DIR}/consumer/redis_consumer")
    run("${CMAKE_COMMAND}" -E env --unset=LD_LIBRARY_PATH "${WORK_DIR}/consumer/redis_consumer")
endif()

message(STATUS "consumer via pkg-config coronet-http_ws")
file(GLOB_RECURSE pc_files "${prefix}/coronet-core.pc")
if(NOT pc_files)
    message(FATAL_ERROR "coronet-core.pc was not installed under ${prefix}")
endif()
list(GET pc_files 0 pc_file)
get_filename_component(pc_dir "${pc_file}" DIRECTORY)
set(pkg_config_args --cflags --libs)
if(STATIC)
    list(APPEND pkg_config_args --static)
endif()
execute_process(
    COMMAND "${CMAKE_COMMAND}" -E env "PKG_CONFIG_PATH=${pc_dir}"
            pkg-config ${pkg_config_args} coronet-http_ws
    OUTPUT_VARIABLE flags OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE result)
if(NOT result STREQUAL "0")
    message(FATAL_ERROR "pkg-config ${pkg_config_args} coronet-http_ws failed (${result})")
endif()
message(STATUS "pkg-config: ${flags}")
separate_arguments(flags UNIX_COMMAND "${flags}")
run("${CXX}" -std=c++20 "${CONSUMER_DIR}/main.cpp" -o "${WORK_DIR}/pkg_config_consumer" ${flags})
# No LD_LIBRARY_PATH: a shared install's .pc files give the consumer a RUNPATH to the libdir.
run("${CMAKE_COMMAND}" -E env --unset=LD_LIBRARY_PATH "${WORK_DIR}/pkg_config_consumer")
