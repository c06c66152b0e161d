# Building, exporting and installing one coronet layer.
#
#   coronet_add_layer(<layer>
#       [LAYERS <layer>...]            coronet layers this one builds on (linked PUBLIC)
#       [PUBLIC_LIBS <lib>...]         other libraries whose types appear in public headers
#       [PRIVATE_LIBS <lib>...]        implementation-only libraries
#       [PC_REQUIRES_PRIVATE <mod>...] pkg-config modules behind PRIVATE_LIBS
#       [PC_CFLAGS <flag>...] [PC_LIBS <flag>...] [PC_LIBS_PRIVATE <flag>...])
#
# Conventions (see docs/build.md):
#   <layer>/include/coronet/<layer>/**.hpp   public headers, installed
#   <layer>/src/**.cpp                       sources (globbed, CONFIGURE_DEPENDS)
#   <layer>/src/**.hpp                       private headers, on the layer's PRIVATE include path
# Produces target coronet_<layer> (alias and export name coronet::<layer>), the generated
# export header <coronet/<layer>/export.hpp> with CORONET_<LAYER>_EXPORT, and coronet-<layer>.pc.
#
#   coronet_package_dependency(<cmake code>)
# Appends code that coronetConfig.cmake runs before loading the targets (find_dependency calls
# for whatever the exported targets name).
#
#   coronet_install_package()
# Called once from the top-level CMakeLists.txt after every layer: installs the export set
# coronetTargets, coronetConfig.cmake and coronetConfigVersion.cmake.
include_guard(GLOBAL)
include(GenerateExportHeader)
include(CMakePackageConfigHelpers)
include(GNUInstallDirs)

set(CORONET_CMAKE_DIR "${CMAKE_CURRENT_LIST_DIR}" CACHE INTERNAL "coronet's cmake/ folder")
set(CORONET_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/coronet" CACHE STRING
    "Where coronetConfig.cmake is installed, relative to the prefix")

function(coronet_package_dependency code)
    set_property(GLOBAL APPEND_STRING PROPERTY CORONET_PACKAGE_DEPENDENCIES "${code}\n")
endfunction()

function(coronet_add_layer layer)
    cmake_parse_arguments(PARSE_ARGV 1 arg ""  ""
        "LAYERS;PUBLIC_LIBS;PRIVATE_LIBS;PC_REQUIRES_PRIVATE;PC_CFLAGS;PC_LIBS;PC_LIBS_PRIVATE")
    if(arg_UNPARSED_ARGUMENTS)
        message(FATAL_ERROR "coronet_add_layer(${layer}): unknown arguments ${arg_UNPARSED_ARGUMENTS}")
    endif()

    set(target coronet_${layer})
    string(TOUPPER "${layer}" LAYER)
    set(src_dir "${CMAKE_CURRENT_SOURCE_DIR}/src")
    set(include_dir "${CMAKE_CURRENT_SOURCE_DIR}/include")
    set(generated_include_dir "${CMAKE_CURRENT_BINARY_DIR}/include")

    file(GLOB_RECURSE sources CONFIGURE_DEPENDS "${src_dir}/*.cpp")
    file(GLOB_RECURSE public_headers CONFIGURE_DEPENDS "${include_dir}/coronet/${layer}/*.hpp")
    if(NOT sources)
        message(FATAL_ERROR "coronet: layer ${layer} has no sources under ${src_dir}")
    endif()

    # During 0.x every minor release may break the ABI, so the soname carries the minor too
    # (libcoronet_core.so.0.1): an old binary never loads an incompatible 0.2. From 1.0 on the
    # soname is the major alone.
    if(PROJECT_VERSION_MAJOR EQUAL 0)
        set(soversion "0.${PROJECT_VERSION_MINOR}")
    else()
        set(soversion "${PROJECT_VERSION_MAJOR}")
    endif()
    add_library(${target} ${sources} ${public_headers})
    add_library(coronet::${layer} ALIAS ${target})
    set_target_properties(${target} PROPERTIES
        EXPORT_NAME ${layer}
        OUTPUT_NAME coronet_${layer}
        VERSION ${PROJECT_VERSION}
        SOVERSION ${soversion}
        CXX_EXTENSIONS OFF
        CXX_VISIBILITY_PRESET hidden
        VISIBILITY_INLINES_HIDDEN ON
        # An installed layer finds the layers below it beside itself, wherever the prefix is
        # (libcoronet_http_ws needs libcoronet_ws even when the program links http_ws only).
        INSTALL_RPATH "$ORIGIN")
    target_compile_features(${target} PUBLIC cxx_std_20)
    target_include_directories(${target}
        PUBLIC
            "$<BUILD_INTERFACE:${include_dir}>"
            "$<BUILD_INTERFACE:${generated_include_dir}>"
            "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>"
        PRIVATE
            "${src_dir}")
    foreach(dep IN LISTS arg_LAYERS)
        target_link_libraries(${target} PUBLIC coronet::${dep})
    endforeach()
    target_link_libraries(${target} PUBLIC ${arg_PUBLIC_LIBS} PRIVATE ${arg_PRIVATE_LIBS})
    coronet_target_warnings(${target})
    # Thread-locals (the coroutine frame pool, the current loop, ws's mask keys and zlib
    # pools) in the initial-exec model: in a shared library the default global-dynamic model
    # calls __tls_get_addr on every access, twice per coroutine frame (callgrind: 8 % of a
    # small ws echo). The layers are linked, not meant for dlopen; their TLS is a few hundred
    # bytes, which glibc's static TLS surplus holds even then.
    if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
        target_compile_options(${target} PRIVATE -ftls-model=initial-exec)
    endif()

    # <coronet/<layer>/export.hpp>: CORONET_<LAYER>_EXPORT marks what a shared build exports.
    # A static build bakes CORONET_<LAYER>_STATIC_DEFINE into the installed header, so
    # consumers need no extra -D whichever way the library was built.
    set(export_header "${generated_include_dir}/coronet/${layer}/export.hpp")
    set(raw_export_header "${CMAKE_CURRENT_BINARY_DIR}/export_header/export.hpp")
    generate_export_header(${target}
        BASE_NAME CORONET_${LAYER}
        EXPORT_FILE_NAME "${raw_export_header}")
    file(READ "${raw_export_header}" export_content)
    if(NOT BUILD_SHARED_LIBS)
        string(PREPEND export_content
            "/* coronet was built as a static library. */\n"
            "#ifndef CORONET_${LAYER}_STATIC_DEFINE\n"
            "#  define CORONET_${LAYER}_STATIC_DEFINE\n"
            "#endif\n")
    endif()
    file(CONFIGURE OUTPUT "${export_header}" CONTENT "${export_content}" @ONLY)

    set_property(GLOBAL APPEND PROPERTY CORONET_LAYERS ${layer})
    set_property(TARGET ${target} PROPERTY CORONET_PUBLIC_INCLUDE_DIR "${include_dir}")

    if(NOT CORONET_INSTALL)
        return()
    endif()

    install(TARGETS ${target}
        EXPORT coronetTargets
        LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
        ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
        RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}"
        INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
    install(DIRECTORY "${include_dir}/"
        DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
        FILES_MATCHING PATTERN "*.hpp")
    install(FILES "${export_header}"
        DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/coronet/${layer}")

    # pkg-config: prefix is found relative to the .pc file, so the install can be relocated
    # (cmake --install --prefix <elsewhere>, DESTDIR, tarballs).
    set(pc_dir "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
    if(IS_ABSOLUTE "${pc_dir}")
        set(PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
    else()
        file(RELATIVE_PATH pc_to_prefix "/prefix/${pc_dir}" "/prefix")
        string(REGEX REPLACE "/$" "" pc_to_prefix "${pc_to_prefix}")
        set(PC_PREFIX "\${pcfiledir}/${pc_to_prefix}")
    endif()
    foreach(kind IN ITEMS LIBDIR INCLUDEDIR)
        if(IS_ABSOLUTE "${CMAKE_INSTALL_${kind}}")
            set(PC_${kind} "${CMAKE_INSTALL_${kind}}")
        else()
            set(PC_${kind} "\${prefix}/${CMAKE_INSTALL_${kind}}")
        endif()
    endforeach()
    set(PC_NAME "coronet-${layer}")
    set(PC_VERSION "${PROJECT_VERSION}")
    set(PC_DESCRIPTION "coronet ${layer} layer")
    list(TRANSFORM arg_LAYERS PREPEND "coronet-" OUTPUT_VARIABLE pc_requires)
    list(JOIN pc_requires ", " PC_REQUIRES)
    list(JOIN arg_PC_REQUIRES_PRIVATE ", " PC_REQUIRES_PRIVATE)
    list(JOIN arg_PC_CFLAGS " " PC_CFLAGS)
    list(JOIN arg_PC_LIBS " " PC_LIBS)
    list(JOIN arg_PC_LIBS_PRIVATE " " PC_LIBS_PRIVATE)
    set(PC_LIBNAME coronet_${layer})
    # A shared install outside the loader's default paths would otherwise need LD_LIBRARY_PATH:
    # consumers linked through pkg-config get a RUNPATH to this install's libdir instead.
    set(PC_RPATH "")
    if(BUILD_SHARED_LIBS)
        set(PC_RPATH " -Wl,-rpath,\${libdir}")
    endif()
    configure_file("${CORONET_CMAKE_DIR}/coronet-layer.pc.in"
                   "${CMAKE_CURRENT_BINARY_DIR}/${PC_NAME}.pc" @ONLY)
    install(FILES "${CMAKE_CURRENT_BINARY_DIR}/${PC_NAME}.pc" DESTINATION "${pc_dir}")
endfunction()

function(coronet_install_package)
    get_property(CORONET_LAYERS GLOBAL PROPERTY CORONET_LAYERS)
    get_property(CORONET_PACKAGE_DEPENDENCIES GLOBAL PROPERTY CORONET_PACKAGE_DEPENDENCIES)
    if(NOT CORONET_LAYERS)
        return()
    endif()

    install(EXPORT coronetTargets
        NAMESPACE coronet::
        DESTINATION "${CORONET_INSTALL_CMAKEDIR}")

    set(config_dir "${PROJECT_BINARY_DIR}/package")
    configure_package_config_file("${CORONET_CMAKE_DIR}/coronetConfig.cmake.in"
        "${config_dir}/coronetConfig.cmake"
        INSTALL_DESTINATION "${CORONET_INSTALL_CMAKEDIR}"
        NO_SET_AND_CHECK_MACRO)
    # 0.x: any minor release may change API and ABI, so only the same minor is compatible.
    # From 1.0 on, releases with the same major are.
    if(PROJECT_VERSION_MAJOR EQUAL 0)
        set(compatibility SameMinorVersion)
    else()
        set(compatibility SameMajorVersion)
    endif()
    write_basic_package_version_file("${config_dir}/coronetConfigVersion.cmake"
        VERSION ${PROJECT_VERSION}
        COMPATIBILITY ${compatibility})
    install(FILES
        "${config_dir}/coronetConfig.cmake"
        "${config_dir}/coronetConfigVersion.cmake"
        DESTINATION "${CORONET_INSTALL_CMAKEDIR}")
endfunction()
