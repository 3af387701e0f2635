# CTest install_consumer: `cmake --install` of the build into a scratch prefix, then a small C program built
# against that installed tree twice, with find_package(cellcount) (consumer/CMakeLists.txt) and with
# `pkg-config --cflags --libs cellcount`, and run: each must load the INSTALLED library and print its version
# and methods. Also checks the installed files, the SONAME file name, that the library exports only cellcount_*
# symbols, and that the installed CLI runs from its prefix.
# -D: BUILD_DIR SCRATCH SOURCE_DIR GENERATOR C_COMPILER EXPECT_VERSION ABI LIBDIR [MAKE_PROGRAM NM OBJDUMP PKG_CONFIG]
foreach(v BUILD_DIR SCRATCH SOURCE_DIR GENERATOR C_COMPILER EXPECT_VERSION ABI LIBDIR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "install_test.cmake: -D${v}=... missing")
  endif()
endforeach()

function(run what)  # run(<what> COMMAND ...): runs it without LD_LIBRARY_PATH, fails with its output; sets OUT
  execute_process(COMMAND ${CMAKE_COMMAND} -E env --unset=LD_LIBRARY_PATH ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "FAIL ${what} (exit ${rc}):\n${out}\n${err}")
  endif()
  set(OUT "${out}" PARENT_SCOPE)
endfunction()

# The consumer's output names the installed library (not the build tree's) and this version.
function(check_consumer_output what out)
  message(STATUS "${what}:\n${out}")
  if(NOT out MATCHES "library ${EXPECT_VERSION} \\(number [0-9]+, ABI ${ABI}\\) from ${LIB}/libcellcount\\.so")
    message(FATAL_ERROR "FAIL ${what}: expected version ${EXPECT_VERSION} ABI ${ABI} loaded from ${LIB}")
  endif()
  if(NOT out MATCHES "methods [^\n]*dcl")
    message(FATAL_ERROR "FAIL ${what}: no method list with dcl")
  endif()
endfunction()

set(PREFIX ${SCRATCH}/prefix)
set(LIB ${PREFIX}/${LIBDIR})
file(REMOVE_RECURSE ${SCRATCH})
file(MAKE_DIRECTORY ${SCRATCH})

# 1. install
run("cmake --install" COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX})
foreach(f ${LIBDIR}/libcellcount.so ${LIBDIR}/libcellcount.so.${ABI} ${LIBDIR}/libcellcount.so.${EXPECT_VERSION}
          include/cellcount/cellcount.h bin/cellcount
          ${LIBDIR}/cmake/cellcount/cellcountConfig.cmake ${LIBDIR}/cmake/cellcount/cellcountConfigVersion.cmake
          ${LIBDIR}/cmake/cellcount/cellcountTargets.cmake ${LIBDIR}/pkgconfig/cellcount.pc)
  if(NOT EXISTS ${PREFIX}/${f})
    message(FATAL_ERROR "FAIL cmake --install: ${PREFIX}/${f} missing")
  endif()
endforeach()
message(STATUS "installed into ${PREFIX}")

# 2. the library exports exactly the functions the installed header declares (CELLCOUNT_API lines)
if(NM)
  file(READ ${PREFIX}/include/cellcount/cellcount.h header)
  string(REPLACE ";" "," header "${header}")  # not a CMake list separator
  string(REGEX MATCHALL "\nCELLCOUNT_API [^(\n]*[ *]cellcount_[a-z0-9_]+\\(" api_lines "${header}")
  set(declared "")
  foreach(l ${api_lines})
    string(REGEX MATCH "cellcount_[a-z0-9_]+\\($" name "${l}")
    string(REPLACE "(" "" name "${name}")
    list(APPEND declared ${name})
  endforeach()
  run("nm -D" COMMAND ${NM} -D --defined-only ${LIB}/libcellcount.so.${ABI})
  string(REGEX MATCHALL "[^\n]+" lines "${OUT}")
  set(exported "")
  foreach(l ${lines})
    string(REGEX REPLACE "^.* " "" sym "${l}")
    string(REGEX REPLACE "@.*$" "" sym "${sym}")  # a symbol version, if the linker gave one
    list(APPEND exported ${sym})
  endforeach()
  list(SORT declared)
  list(SORT exported)
  list(REMOVE_DUPLICATES exported)
  list(LENGTH declared n_declared)
  list(LENGTH exported n_exported)
  if(n_declared LESS 10 OR NOT declared STREQUAL exported)
    set(extra ${exported})
    list(REMOVE_ITEM extra ${declared})
    set(missing ${declared})
    list(REMOVE_ITEM missing ${exported})
    list(LENGTH extra n_extra)
    list(SUBLIST extra 0 20 extra)
    message(FATAL_ERROR "FAIL exports: the header declares ${n_declared} functions, the library exports "
                        "${n_exported} symbols; not exported: ${missing}; exported but not declared (${n_extra}, "
                        "first 20): ${extra}")
  endif()
  message(STATUS "exports: ${n_exported} symbols, exactly the ${n_declared} functions of cellcount.h")
endif()

# 3. the SONAME is the ABI's file, and the CLI's run path is relative to it
if(OBJDUMP)
  run("objdump -p" COMMAND ${OBJDUMP} -p ${LIB}/libcellcount.so.${ABI})
  if(NOT OUT MATCHES "SONAME +libcellcount\\.so\\.${ABI}\n")
    message(FATAL_ERROR "FAIL SONAME: expected libcellcount.so.${ABI} in:\n${OUT}")
  endif()
  run("objdump -p" COMMAND ${OBJDUMP} -p ${PREFIX}/bin/cellcount)
  string(REPLACE "$" "\\$" origin "$ORIGIN/../${LIBDIR}")
  if(NOT OUT MATCHES "(RUNPATH|RPATH) +${origin}\n")
    message(FATAL_ERROR "FAIL bin/cellcount: expected run path $ORIGIN/../${LIBDIR} in:\n${OUT}")
  endif()
  message(STATUS "SONAME libcellcount.so.${ABI}; bin/cellcount run path $ORIGIN/../${LIBDIR}")
endif()

# 4. find_package(cellcount)
set(cm_args -S ${SOURCE_DIR}/consumer -B ${SCRATCH}/cmake-build -G ${GENERATOR} -DCMAKE_C_COMPILER=${C_COMPILER}
            -DCMAKE_PREFIX_PATH=${PREFIX} -DEXPECT_VERSION=${EXPECT_VERSION} -DCMAKE_BUILD_TYPE=Release)
if(MAKE_PROGRAM)
  list(APPEND cm_args -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()
run("configure the find_package consumer" COMMAND ${CMAKE_COMMAND} ${cm_args})
run("build the find_package consumer" COMMAND ${CMAKE_COMMAND} --build ${SCRATCH}/cmake-build)
run("run the find_package consumer" COMMAND ${SCRATCH}/cmake-build/consumer)
check_consumer_output("find_package consumer" "${OUT}")

# 5. pkg-config
if(NOT PKG_CONFIG)
  set(PKG_CONFIG pkg-config)
endif()
set(pc_env ${CMAKE_COMMAND} -E env PKG_CONFIG_PATH=${LIB}/pkgconfig)
run("pkg-config --modversion" COMMAND ${pc_env} ${PKG_CONFIG} --modversion cellcount)
string(STRIP "${OUT}" pc_version)
if(NOT pc_version STREQUAL EXPECT_VERSION)
  message(FATAL_ERROR "FAIL pkg-config --modversion cellcount: '${pc_version}', expected ${EXPECT_VERSION}")
endif()
run("pkg-config --cflags --libs" COMMAND ${pc_env} ${PKG_CONFIG} --cflags --libs cellcount)
string(STRIP "${OUT}" pc_flags)
message(STATUS "pkg-config --cflags --libs cellcount: ${pc_flags}")
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
run("compile the pkg-config consumer" COMMAND ${C_COMPILER} -std=c99 -Wall -Wextra -Werror -pedantic
    ${SOURCE_DIR}/consumer/main.c ${pc_flags} -o ${SCRATCH}/consumer-pc)
# no run path from pkg-config (as for any library in a non-standard prefix): the loader is told where
run("run the pkg-config consumer" COMMAND ${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${LIB} ${SCRATCH}/consumer-pc)
check_consumer_output("pkg-config consumer" "${OUT}")

# 6. the installed CLI finds its library through $ORIGIN/../lib
run("installed cellcount info" COMMAND ${PREFIX}/bin/cellcount info)
if(NOT OUT MATCHES "${EXPECT_VERSION}")
  message(FATAL_ERROR "FAIL installed cellcount info: no version ${EXPECT_VERSION} in:\n${OUT}")
endif()
message(STATUS "installed CLI: bin/cellcount info names ${EXPECT_VERSION}")
