# CUDA LibTorch from the PyPI wheels without a CUDA toolkit (scripts/build-cuda.sh).
# The torch wheel's Caffe2Config includes public/cuda.cmake, which calls enable_language(CUDA) and so needs nvcc;
# the nvidia-* wheels bring the runtime, cuDNN, cuBLAS... but no nvcc (nvidia-cuda-nvcc-cu12 has ptxas only).
# cellcount compiles no CUDA code: it needs the CUDA headers at most and libtorch_cuda.so at run time. cuda.cmake
# returns at once when torch::cudart exists ("poor man's include guard"), so we declare that target (and the
# few others Caffe2Targets.cmake or TorchConfig.cmake refer to) from the wheels before find_package(Torch).
# Input: CELLCOUNT_CUDA_WHEELS = the site-packages/nvidia folder of the venv that holds torch.
if(TARGET torch::cudart)
  return()
endif()
set(_nv ${CELLCOUNT_CUDA_WHEELS})
if(NOT EXISTS ${_nv}/cuda_runtime/include/cuda_runtime_api.h)
  message(FATAL_ERROR "CELLCOUNT_CUDA_WHEELS=${_nv}: no cuda_runtime/include/cuda_runtime_api.h there; expected the "
                      "site-packages/nvidia folder of a venv with torch and nvidia-cuda-runtime-cu12")
endif()
file(GLOB _cudart ${_nv}/cuda_runtime/lib/libcudart.so.*)
if(NOT _cudart)
  message(FATAL_ERROR "CELLCOUNT_CUDA_WHEELS=${_nv}: no cuda_runtime/lib/libcudart.so.*")
endif()
list(GET _cudart 0 _cudart)

# The CUDA version the wheels carry, from the runtime header (CUDART_VERSION 12060 -> 12.6).
file(STRINGS ${_nv}/cuda_runtime/include/cuda_runtime_api.h _v REGEX "^#define CUDART_VERSION +[0-9]+")
string(REGEX REPLACE ".* ([0-9]+)$" "\\1" _v "${_v}")
math(EXPR _major "${_v} / 1000")
math(EXPR _minor "(${_v} % 1000) / 10")
set(CELLCOUNT_CUDA_WHEELS_VERSION ${_major}.${_minor})

# Headers of every nvidia-* wheel (cuda_runtime, cublas, cudnn, nvtx...), for code that includes ATen/cuda.
file(GLOB _incs LIST_DIRECTORIES true ${_nv}/*/include)
# The wheels' library folders: the linker resolves libtorch_cuda.so's own dependencies (cuDNN, cuBLAS, NCCL...)
# through them (-rpath-link), and the executables find them at run time through the wheels' RUNPATHs.
file(GLOB _libdirs LIST_DIRECTORIES true ${_nv}/*/lib)

# TorchConfig finds libtorch.so with find_library(... PATHS <wheel>/lib), which searches the system folders first:
# on a machine with Debian's libtorch-dev it named /usr/lib/.../libtorch.so (1.13) in its message. Pin the wheel's.
# Same for libc10.so (TORCH_LIBRARIES lists ${c10_LIBRARY}: Debian's libc10.so.1.13 beside the wheel's libtorch
# aborted at start-up with a DispatchKeySet INTERNAL ASSERT) and libc10_cuda.so.
get_filename_component(_torch ${_nv}/../torch ABSOLUTE)
find_library(TORCH_LIBRARY torch PATHS ${_torch}/lib NO_DEFAULT_PATH)
find_library(c10_LIBRARY c10 PATHS ${_torch}/lib NO_DEFAULT_PATH)
find_library(C10_CUDA_LIBRARY c10_cuda PATHS ${_torch}/lib NO_DEFAULT_PATH)

add_library(torch::cudart INTERFACE IMPORTED)
set_property(TARGET torch::cudart PROPERTY INTERFACE_INCLUDE_DIRECTORIES ${_incs})
set_property(TARGET torch::cudart PROPERTY INTERFACE_LINK_LIBRARIES ${_cudart})
foreach(_d ${_libdirs})
  set_property(TARGET torch::cudart APPEND PROPERTY INTERFACE_LINK_OPTIONS "LINKER:-rpath-link,${_d}")
endforeach()
# Referred to by TorchConfig.cmake as ${CUDA_NVRTC_LIB} (libtorch_cuda.so loads nvrtc itself when needed).
set(CUDA_NVRTC_LIB "" CACHE INTERNAL "")
set(CUDA_FOUND TRUE)
set(CUDA_VERSION ${CELLCOUNT_CUDA_WHEELS_VERSION})
message(STATUS "cellcount: CUDA ${CELLCOUNT_CUDA_WHEELS_VERSION} from the PyPI wheels in ${_nv} "
               "(torch::cudart declared without nvcc; runtime ${_cudart})")
