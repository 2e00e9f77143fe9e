# The CUDA backend (NEEDLE_ENABLE_CUDA=ON): the CUDA language, the toolkit's libraries, and
# needle_add_cuda_backend(), which compiles src/backend/cuda into libneedle.

# Hopper only by default: one architecture keeps the compile short. Override with
# -DCMAKE_CUDA_ARCHITECTURES="80;90" (it must be known before the language is enabled).
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 90)
endif()
# The toolkit is often installed without putting nvcc on PATH.
if(NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
  find_program(NEEDLE_NVCC nvcc PATHS /usr/local/cuda/bin NO_CACHE)
  if(NEEDLE_NVCC)
    set(CMAKE_CUDA_COMPILER ${NEEDLE_NVCC})
  endif()
endif()
enable_language(CUDA)
# CMake 3.25 does not know nvcc's C++20 flag (newer CMake does): teach it, so that CUDA_STANDARD 20
# (which CMake also infers from the C++ standard) works.
if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_COMPILE_FEATURES cuda_std_20)
  list(APPEND CMAKE_CUDA_COMPILE_FEATURES cuda_std_20)
endif()
set(CMAKE_CUDA_STANDARD 20)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
set(CMAKE_CUDA_EXTENSIONS OFF)
find_package(CUDAToolkit REQUIRED)

# cuDNN is optional: found next to the toolkit or in the usual prefixes; without it the cuDNN paths
# are left out (NEEDLE_HAS_CUDNN undefined).
find_path(NEEDLE_CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/include)
find_library(NEEDLE_CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/lib)
if(NEEDLE_CUDNN_INCLUDE_DIR AND NEEDLE_CUDNN_LIBRARY)
  message(STATUS "Needle CUDA backend: cuDNN found (${NEEDLE_CUDNN_LIBRARY})")
else()
  message(STATUS "Needle CUDA backend: cuDNN not found, building without it")
endif()

function(needle_add_cuda_backend target)
  set(dir ${PROJECT_SOURCE_DIR}/src/backend/cuda)
  file(GLOB sources CONFIGURE_DEPENDS ${dir}/*.cu ${dir}/*.cpp)
  list(REMOVE_ITEM sources ${dir}/no_cuda.cpp)  # the stand-in for builds without CUDA
  # An object library with its own flags: nvcc takes host-compiler warnings through -Xcompiler, and the
  # objects go straight into libneedle (no extra target for installed consumers to find).
  add_library(needle_cuda OBJECT ${sources})
  target_include_directories(needle_cuda PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
  target_compile_definitions(needle_cuda PRIVATE NEEDLE_HAS_CUDA)
  target_link_libraries(needle_cuda PRIVATE CUDA::cudart_static CUDA::cublas CUDA::cublasLt)
  set(warnings -Wall -Wextra)
  if(NEEDLE_WARNINGS_AS_ERRORS)
    list(APPEND warnings -Werror)
  endif()
  list(JOIN warnings "," host_warnings)
  target_compile_options(
    needle_cuda
    PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${warnings};-Wpedantic>
            $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=${host_warnings};--expt-relaxed-constexpr>
            $<$<AND:$<COMPILE_LANGUAGE:CUDA>,$<BOOL:${NEEDLE_WARNINGS_AS_ERRORS}>>:-Werror=all-warnings>)
  if(NEEDLE_CUDNN_INCLUDE_DIR AND NEEDLE_CUDNN_LIBRARY)
    target_include_directories(needle_cuda PRIVATE ${NEEDLE_CUDNN_INCLUDE_DIR})
    target_compile_definitions(needle_cuda PRIVATE NEEDLE_HAS_CUDNN)
    target_link_libraries(${target} PRIVATE ${NEEDLE_CUDNN_LIBRARY})
  endif()

  target_sources(${target} PRIVATE $<TARGET_OBJECTS:needle_cuda>)
  target_compile_definitions(${target} PRIVATE NEEDLE_HAS_CUDA)
  target_link_libraries(${target} PRIVATE CUDA::cudart_static CUDA::cublas CUDA::cublasLt)
endfunction()
