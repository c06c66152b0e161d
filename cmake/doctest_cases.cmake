# cmake -DTEST_EXECUTABLE=<exe> -DLAYER=<layer> -DTIMEOUT=<s> -DWORKING_DIR=<dir>
#       -DCTEST_FILE=<out> -P doctest_cases.cmake
#
# Run after a layer's doctest executable is linked (coronet_add_layer_tests). Asks it ONCE for
# its cases and their suites (--list-test-cases --reporters=xml) and writes CTEST_FILE: one CTest
# test per case, labelled with the layer and the case's suite.
#
# doctest's own doctest_discover_tests(ADD_LABELS) starts the executable once more per case to
# learn its suite: a thousand process starts per build, which under ASan took minutes of CI. It
# also cut case names at ';' into tests that ran no case and passed. Here a name is taken whole,
# and a test whose filter selects no case fails instead of passing empty.
cmake_minimum_required(VERSION 3.21)
foreach(var IN ITEMS TEST_EXECUTABLE LAYER TIMEOUT WORKING_DIR CTEST_FILE)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "doctest_cases.cmake: -D${var}=... is required")
    endif()
endforeach()

execute_process(
    COMMAND "${TEST_EXECUTABLE}" --list-test-cases --reporters=xml
    OUTPUT_VARIABLE listing
    RESULT_VARIABLE rc
    WORKING_DIRECTORY "${WORKING_DIR}")
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${TEST_EXECUTABLE} --list-test-cases failed (${rc}):\n${listing}")
endif()

# xml_attribute(<out> <element text> <name>): the decoded value of attribute <name>.
function(xml_attribute out element name)
    string(FIND "${element}" " ${name}=\"" at)
    if(at EQUAL -1)
        set(${out} "" PARENT_SCOPE)
        return()
    endif()
    string(LENGTH " ${name}=\"" skip)
    math(EXPR at "${at} + ${skip}")
    string(SUBSTRING "${element}" ${at} -1 value)
    string(FIND "${value}" "\"" end)
    string(SUBSTRING "${value}" 0 ${end} value)
    string(REPLACE "&lt;" "<" value "${value}")
    string(REPLACE "&gt;" ">" value "${value}")
    string(REPLACE "&quot;" "\"" value "${value}")
    string(REPLACE "&apos;" "'" value "${value}")
    string(REPLACE "&amp;" "&" value "${value}")
    set(${out} "${value}" PARENT_SCOPE)
endfunction()

# Walked with string(FIND) rather than a regex match list: a list would split names at ';'.
set(script "")
set(count 0)
set(rest "${listing}")
while(TRUE)
    string(FIND "${rest}" "<TestCase " at)
    if(at EQUAL -1)
        break()
    endif()
    string(SUBSTRING "${rest}" ${at} -1 rest)
    # The element ends at `"/>`: doctest escapes no '>' in a name, but every '"'.
    string(FIND "${rest}" "\"/>" end)
    math(EXPR end "${end} + 1")
    string(SUBSTRING "${rest}" 0 ${end} element)
    string(SUBSTRING "${rest}" ${end} -1 rest)

    xml_attribute(name "${element}" name)
    xml_attribute(suite "${element}" testsuite)
    if(name MATCHES "[*?]" OR "${name}${suite}" MATCHES "]==]")
        message(FATAL_ERROR "doctest case '${name}' (suite '${suite}') holds a wildcard of "
                            "doctest's --test-case filter or the end of a CMake bracket argument")
    endif()
    # doctest's filter takes ',' as a separator and '\' as an escape.
    string(REPLACE "\\" "\\\\" filter "${name}")
    string(REPLACE "," "\\," filter "${filter}")
    set(labels "${LAYER}")
    if(NOT suite STREQUAL "")
        string(APPEND labels ";${suite}")
    endif()
    string(APPEND script
        "add_test([==[${name}]==] [==[${TEST_EXECUTABLE}]==] [==[--test-case=${filter}]==])\n"
        "set_tests_properties([==[${name}]==] PROPERTIES WORKING_DIRECTORY [==[${WORKING_DIR}]==] "
        "TIMEOUT ${TIMEOUT} LABELS [==[${labels}]==] "
        "FAIL_REGULAR_EXPRESSION [==[\\[doctest\\] test cases: +0 \\|]==])\n")
    math(EXPR count "${count} + 1")
endwhile()

if(count EQUAL 0)
    message(FATAL_ERROR "${TEST_EXECUTABLE} listed no test cases:\n${listing}")
endif()
file(WRITE "${CTEST_FILE}" "${script}")
