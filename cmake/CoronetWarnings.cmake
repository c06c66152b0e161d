# coronet_target_warnings(<target>)
#
# Adds coronet's warning set to one of coronet's own targets (PRIVATE: never leaks into
# consumers). With CORONET_WERROR=ON warnings are errors, except the g++ 12 diagnostics listed
# below, which stay visible as warnings because g++ 12 reports them for correct code.
include_guard(GLOBAL)

function(coronet_target_warnings target)
    # -Wconversion/-Wsign-conversion are left out on purpose: byte and length arithmetic in
    # parsers would drown real findings in casts.
    set(common -Wall -Wextra -Wpedantic -Wshadow -Wcast-align -Wformat=2
               -Wimplicit-fallthrough -Wundef)
    set(cxx_only -Wnon-virtual-dtor -Woverloaded-virtual)
    target_compile_options(${target} PRIVATE
        ${common}
        $<$<COMPILE_LANGUAGE:CXX>:${cxx_only}>)

    if(CORONET_WERROR)
        target_compile_options(${target} PRIVATE -Werror)
        if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
            target_compile_options(${target} PRIVATE
                # std::optional / std::variant members and coroutine frames at -O1 and up
                # (GCC PR 80635 and relatives).
                -Wno-error=maybe-uninitialized
                # std::vector / std::string / memcpy after inlining at -O2 (the late
                # warning passes of g++ 12 see impossible paths).
                -Wno-error=array-bounds
                -Wno-error=stringop-overflow
                -Wno-error=stringop-overread
                -Wno-error=restrict
                # g++ 13 adds -Wdangling-reference with many false positives (GCC PR 107532);
                # g++ 12 has no such flag. Add -Wno-error=dangling-reference when moving to 13.
            )
        endif()
    endif()
endfunction()
