# switchboard_layer(<layer>) — what every library layer (protocol, net,
# server, client, realtime) shares, called once in src/<layer>/CMakeLists.txt
# after the target switchboard_<layer> and SWITCHBOARD_<LAYER>_HEADERS exist:
#
#   * its name for users: switchboard::<layer>, in the build tree (an alias)
#     and in the installed CMake package (EXPORT_NAME);
#   * C++20 for whoever links it (the public headers need it);
#   * the include directories: include/ and the generated headers of the
#     build tree (version.hpp, <layer>/export.hpp) while building, the
#     installed include/ afterwards;
#   * <switchboard/<layer>/export.hpp> from GenerateExportHeader:
#     SWITCHBOARD_<LAYER>_EXPORT marks what a shared library exports. Every
#     other symbol is hidden (CXX_VISIBILITY_PRESET), so a shared library's ABI
#     is what its public headers declare and nothing of src/. In a static
#     build the macro is empty;
#   * a shared library's SONAME: libswitchboard_<layer>.so.MAJOR.MINOR (no
#     ABI promise between minor versions before 1.0), file version the
#     project's, and RUNPATH $ORIGIN so it finds the layers below it;
#   * install rules: the library, the headers of SWITCHBOARD_<LAYER>_HEADERS
#     (explicit lists, so nothing of src/ is installed by accident) and the
#     export header; the target joins the export set switchboard-targets
#     (cmake/install.cmake writes the package around it).
include(GenerateExportHeader)
include(GNUInstallDirs)

function(switchboard_layer layer)
  set(target switchboard_${layer})
  string(TOUPPER "${layer}" layer_upper)
  set(generated "${PROJECT_BINARY_DIR}/include/switchboard/${layer}/export.hpp")

  set_target_properties(${target} PROPERTIES
    EXPORT_NAME ${layer}
    VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR}
    # Shared: each library finds its sibling layers next to itself, in any prefix.
    INSTALL_RPATH "$ORIGIN"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_compile_features(${target} PUBLIC cxx_std_20)
  target_include_directories(${target} PUBLIC
    "$<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>"
    "$<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>"
    "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
  generate_export_header(${target}
    BASE_NAME switchboard_${layer}
    EXPORT_FILE_NAME "${generated}")

  install(TARGETS ${target} EXPORT switchboard-targets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime
            NAMELINK_COMPONENT development)
  install(FILES ${SWITCHBOARD_${layer_upper}_HEADERS} "${generated}"
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/switchboard/${layer}
    COMPONENT development)
endfunction()
