# libFuzzer targets as a CTest kind (label "fuzz"). Active only with -DCORONET_FUZZ=ON (clang).
#
#   coronet_enable_fuzzing()
# Called by the top-level CMakeLists.txt before any layer: instruments every target of the build
# with -fsanitize=fuzzer-no-link,address,undefined so that the layers' sans-I/O code the fuzz
# targets link is coverage-guided and sanitized too.
#
#   coronet_add_fuzz_target(<name> [SOURCES <file>...] [LIBS <lib>...])
# Builds executable <name>_fuzz (default source tests/fuzz/<name>_fuzz.cpp), links LIBS, and
# registers test fuzz.<name>: a run of -max_total_time=$CORONET_FUZZ_SECONDS seconds on a
# scratch copy of the seed corpus tests/fuzz/corpus/<name>/. Fuzz targets see tests/ on their
# include path (<fuzz/chunked_input.hpp>, header-only <testing/...> helpers).
# tests/fuzz/CMakeLists.txt registers every tests/fuzz/<name>_fuzz.cpp automatically.
include_guard(GLOBAL)

set(CORONET_FUZZ_SANITIZERS address,undefined)

function(coronet_enable_fuzzing)
    if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang" OR NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
        message(FATAL_ERROR "CORONET_FUZZ=ON needs clang and clang++ (libFuzzer); "
                            "use the 'fuzz' preset: cmake --preset fuzz")
    endif()
    # -fno-sanitize=function: clang 14 cannot emit UBSan's function-type prologue together with
    # libFuzzer's coverage tables for coroutines ("Cannot represent a difference across
    # sections"); that check (calls through a mismatched function pointer type) is the one lost.
    add_compile_options(-fsanitize=fuzzer-no-link,${CORONET_FUZZ_SANITIZERS}
                        -fno-sanitize=function
                        -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
    add_link_options(-fsanitize=${CORONET_FUZZ_SANITIZERS} -fno-sanitize=function)
    add_custom_target(coronet_fuzz_targets)
endfunction()

function(coronet_add_fuzz_target name)
    cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "SOURCES;LIBS")
    if(NOT CORONET_FUZZ)
        return()
    endif()
    if(NOT arg_SOURCES)
        set(arg_SOURCES "${PROJECT_SOURCE_DIR}/tests/fuzz/${name}_fuzz.cpp")
    endif()

    set(target ${name}_fuzz)
    add_executable(${target} ${arg_SOURCES})
    target_compile_features(${target} PRIVATE cxx_std_20)
    target_include_directories(${target} PRIVATE "${PROJECT_SOURCE_DIR}/tests")
    target_link_libraries(${target} PRIVATE ${arg_LIBS})
    target_link_options(${target} PRIVATE -fsanitize=fuzzer)
    coronet_target_warnings(${target})
    add_dependencies(coronet_fuzz_targets ${target})
    set_property(GLOBAL APPEND PROPERTY CORONET_FUZZ_TARGETS ${name})

    add_test(NAME fuzz.${name}
        COMMAND "${CMAKE_COMMAND}"
            "-DFUZZER=$<TARGET_FILE:${target}>"
            "-DSEED_CORPUS=${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${name}"
            "-DWORK_DIR=${PROJECT_BINARY_DIR}/fuzz-runs/${name}"
            "-DSECONDS=${CORONET_FUZZ_SECONDS}"
            -P "${CORONET_CMAKE_DIR}/run_fuzz_target.cmake")
    # The script bounds the fuzzer itself (run time + 120 s); this is only a backstop.
    set_tests_properties(fuzz.${name} PROPERTIES LABELS fuzz TIMEOUT 3600)
endfunction()
