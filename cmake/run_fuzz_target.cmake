# cmake -DFUZZER=<exe> -DSEED_CORPUS=<dir> -DWORK_DIR=<dir> -DSECONDS=<n> -P run_fuzz_target.cmake
#
# One bounded libFuzzer run on a fresh copy of the seed corpus (the source tree is never
# written). The environment variable CORONET_FUZZ_SECONDS overrides SECONDS. A crash, leak,
# sanitizer report or per-input timeout fails the test and leaves the reproducer in
# <WORK_DIR>/artifacts; inputs under 4 KiB are also printed as hex for CI logs.
foreach(var IN ITEMS FUZZER SEED_CORPUS WORK_DIR SECONDS)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "run_fuzz_target.cmake: -D${var}=... is required")
    endif()
endforeach()
if(DEFINED ENV{CORONET_FUZZ_SECONDS} AND NOT "$ENV{CORONET_FUZZ_SECONDS}" STREQUAL "")
    set(SECONDS "$ENV{CORONET_FUZZ_SECONDS}")
endif()
if(NOT SECONDS MATCHES "^[0-9]+$")
    message(FATAL_ERROR "fuzz run time must be a whole number of seconds, got '${SECONDS}'")
endif()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}/corpus" "${WORK_DIR}/artifacts")
if(IS_DIRECTORY "${SEED_CORPUS}")
    file(COPY "${SEED_CORPUS}/" DESTINATION "${WORK_DIR}/corpus")
else()
    message(WARNING "no seed corpus at ${SEED_CORPUS}; fuzzing from scratch")
endif()

math(EXPR hard_limit "${SECONDS} + 120")
message(STATUS "fuzzing ${FUZZER} for ${SECONDS} s")
execute_process(
    COMMAND "${FUZZER}"
        -max_total_time=${SECONDS}
        -timeout=10
        -rss_limit_mb=2048
        -print_final_stats=1
        "-artifact_prefix=${WORK_DIR}/artifacts/"
        "${WORK_DIR}/corpus"
    RESULT_VARIABLE result
    TIMEOUT ${hard_limit})

if(NOT result STREQUAL "0")
    file(GLOB artifacts "${WORK_DIR}/artifacts/*")
    foreach(artifact IN LISTS artifacts)
        file(SIZE "${artifact}" size)
        if(size LESS 4096)
            file(READ "${artifact}" bytes HEX)
            message("reproducer ${artifact} (${size} bytes, hex): ${bytes}")
        else()
            message("reproducer ${artifact} (${size} bytes)")
        endif()
    endforeach()
    message(FATAL_ERROR "fuzzer ${FUZZER} failed: ${result}. Reproduce with: ${FUZZER} <reproducer>")
endif()
