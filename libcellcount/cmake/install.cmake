# Install rules (include()d at the end of libcellcount/CMakeLists.txt):
#   cmake --install build --prefix P
# puts into P
#   lib/libcellcount.so -> .so.<ABI> -> .so.<version>   the library (SONAME libcellcount.so.<ABI>)
#   include/cellcount/cellcount.h                       the public header
#   bin/cellcount                                        the CLI (finds the library through $ORIGIN/../lib)
#   lib/cmake/cellcount/                                 find_package(cellcount): cellcount::cellcount, cellcount::cli
#   lib/pkgconfig/cellcount.pc                           pkg-config --cflags --libs cellcount
# Everything is relocatable: the CMake package and the .pc file find the prefix from their own folder.
include(CMakePackageConfigHelpers)

set(CELLCOUNT_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/cellcount CACHE STRING
    "Where cellcountConfig.cmake is installed, relative to the prefix")
mark_as_advanced(CELLCOUNT_INSTALL_CMAKEDIR)

set_target_properties(cellcount_cli PROPERTIES EXPORT_NAME cli INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
install(TARGETS cellcount cellcount_cli EXPORT cellcountTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/include/cellcount/cellcount.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/cellcount)

install(EXPORT cellcountTargets NAMESPACE cellcount:: DESTINATION ${CELLCOUNT_INSTALL_CMAKEDIR})
configure_package_config_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/cellcountConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/cellcountConfig.cmake INSTALL_DESTINATION ${CELLCOUNT_INSTALL_CMAKEDIR})
# Releases 0.x may break the API at each minor version; from 1.0 on, the major version says so.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_compat SameMinorVersion)
else()
  set(_compat SameMajorVersion)
endif()
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/cellcountConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY ${_compat})
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/cellcountConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/cellcountConfigVersion.cmake
        DESTINATION ${CELLCOUNT_INSTALL_CMAKEDIR})

# pkg-config: the prefix is ${pcfiledir}/<the way up from lib*/pkgconfig>, so a copied prefix still works.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  message(FATAL_ERROR "cellcount: CMAKE_INSTALL_LIBDIR and CMAKE_INSTALL_INCLUDEDIR must be relative to the prefix")
endif()
file(RELATIVE_PATH CELLCOUNT_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
string(REGEX REPLACE "/$" "" CELLCOUNT_PC_TO_PREFIX "${CELLCOUNT_PC_TO_PREFIX}")
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/cellcount.pc.in ${CMAKE_CURRENT_BINARY_DIR}/cellcount.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/cellcount.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
unset(_compat)
