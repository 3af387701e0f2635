# File I/O back ends of the library (sources and links on cellcount_objects). include()d from
# libcellcount/CMakeLists.txt after add_library(cellcount_objects ...); the options CELLCOUNT_WITH_OPENCV /
# CELLCOUNT_WITH_ITK come from the top level.
#
# OpenCV and ITK headers are confined to their own source file: each back end's include directories are
# set on that file only (as -isystem, so their headers' warnings stay out of our -Wall -Wextra), and its
# libraries are linked by file so no usage requirement (e.g. ITK's include/ITK-5.2, which holds generic
# names such as core/ and utils.h) reaches the rest of the library.
# Afterwards the global property CELLCOUNT_IO_BACKENDS lists "opencv" and/or "itk".

set(_io_dir ${CMAKE_CURRENT_LIST_DIR})
set_property(GLOBAL PROPERTY CELLCOUNT_IO_BACKENDS "")
target_sources(cellcount_objects PRIVATE ${_io_dir}/image_file.cpp)

# Per-file -isystem flags (the INCLUDE_DIRECTORIES source property would give plain -I). The compiler's
# own directories are skipped: ITK_INCLUDE_DIRS holds /usr/include (for FFTW), and "-isystem /usr/include"
# breaks libstdc++'s #include_next.
function(_cellcount_io_isystem source)
  set(_flags "")
  foreach(_d IN LISTS ARGN)
    if(NOT _d IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
      list(APPEND _flags "-isystem${_d}")  # joined form: one option, safe from de-duplication
    endif()
  endforeach()
  set_property(SOURCE ${source} APPEND PROPERTY COMPILE_OPTIONS ${_flags})
endfunction()

# Links the library files behind imported targets, without their usage requirements (linking the
# targets themselves would put their include directories on every source of the library; in
# CMake 3.25 $<LINK_ONLY:...> does not prevent that for a target's own LINK_LIBRARIES). Header-only
# (INTERFACE) targets are skipped; plain file names and flags pass through.
function(_cellcount_io_link_files)
  set(_files "")
  foreach(_l IN LISTS ARGN)
    if(TARGET ${_l})
      get_target_property(_type ${_l} TYPE)
      if(NOT _type STREQUAL "INTERFACE_LIBRARY")
        list(APPEND _files "$<TARGET_FILE:${_l}>")
      endif()
    else()
      list(APPEND _files ${_l})
    endif()
  endforeach()
  target_link_libraries(cellcount_objects PUBLIC ${_files})
endfunction()

if(CELLCOUNT_WITH_OPENCV)
  find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs)
  set(_src ${_io_dir}/image_file_opencv.cpp)
  target_sources(cellcount_objects PRIVATE ${_src})
  _cellcount_io_isystem(${_src} ${OpenCV_INCLUDE_DIRS})
  _cellcount_io_link_files(${OpenCV_LIBS})
  target_compile_definitions(cellcount_objects PRIVATE CELLCOUNT_WITH_OPENCV=1)
  set_property(GLOBAL APPEND PROPERTY CELLCOUNT_IO_BACKENDS opencv)
  message(STATUS "cellcount: image I/O through OpenCV ${OpenCV_VERSION}")
endif()

if(CELLCOUNT_WITH_ITK)
  # TIFF, plus PNG/JPEG/BMP for when OpenCV is off. image_file_itk.cpp creates those ImageIO classes
  # itself (no IO factories), so neither UseITK.cmake nor ITK_IO_FACTORY_REGISTER_MANAGER is needed.
  # ITKConfig loads the dependencies of every ITK module (GDCM, HDF5, DCMTK...), and Debian's GDCM
  # prints a STATUS line for each of its tools that is not installed: keep those quiet. Warnings and
  # errors still show.
  set(_io_log_level "${CMAKE_MESSAGE_LOG_LEVEL}")
  if(NOT CMAKE_MESSAGE_LOG_LEVEL OR CMAKE_MESSAGE_LOG_LEVEL MATCHES "^(STATUS|VERBOSE|DEBUG|TRACE)$")
    set(CMAKE_MESSAGE_LOG_LEVEL NOTICE)
  endif()
  find_package(ITK 5 REQUIRED COMPONENTS ITKCommon ITKIOImageBase ITKIOTIFF ITKIOPNG ITKIOJPEG ITKIOBMP)
  set(CMAKE_MESSAGE_LOG_LEVEL "${_io_log_level}")
  set(_src ${_io_dir}/image_file_itk.cpp)
  target_sources(cellcount_objects PRIVATE ${_src})
  _cellcount_io_isystem(${_src} ${ITK_INCLUDE_DIRS})
  if(ITK_REQUIRED_CXX_FLAGS)
    separate_arguments(_itk_flags UNIX_COMMAND "${ITK_REQUIRED_CXX_FLAGS}")
    set_property(SOURCE ${_src} APPEND PROPERTY COMPILE_OPTIONS ${_itk_flags})
  endif()
  _cellcount_io_link_files(${ITK_LIBRARIES})
  target_compile_definitions(cellcount_objects PRIVATE CELLCOUNT_WITH_ITK=1)
  set_property(GLOBAL APPEND PROPERTY CELLCOUNT_IO_BACKENDS itk)
  message(STATUS "cellcount: image I/O through ITK ${ITK_VERSION}")
endif()

get_property(_io_backends GLOBAL PROPERTY CELLCOUNT_IO_BACKENDS)
if(NOT _io_backends)
  message(WARNING "cellcount: built without OpenCV and ITK; reading and writing image files will fail "
                  "with CELLCOUNT_ERR_UNSUPPORTED")
endif()
unset(_io_dir)
unset(_src)
unset(_io_backends)
unset(_io_log_level)
