// SPDX-License-Identifier: MIT
// Compiler and platform macros. This header compiles under g++ alone and under nvcc, so the
// same scalar code (dtype conversions, activations, rope angles) runs on host and device.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)
#define R1_HD __host__ __device__ __forceinline__
#define R1_HOST_DEVICE __host__ __device__
#define R1_DEVICE __device__ __forceinline__
#else
#define R1_HD inline
#define R1_HOST_DEVICE
#define R1_DEVICE inline
#endif

// True inside the device pass of nvcc; false on the host pass and under g++.
#if defined(__CUDA_ARCH__)
#define R1_DEVICE_PASS 1
#else
#define R1_DEVICE_PASS 0
#endif

// R1_WITH_CUDA: the CUDA runtime is available to host code (set by the r1::r1 CMake target when
// the CUDA toolkit is found, or by the user). Without it every CUDA memory space and kernel call
// fails with an r1::Error instead of failing to compile, so host-only builds keep working.
#if !defined(R1_WITH_CUDA)
#if defined(__CUDACC__)
#define R1_WITH_CUDA 1
#else
#define R1_WITH_CUDA 0
#endif
#endif

#define R1_VERSION_MAJOR 0
#define R1_VERSION_MINOR 1
#define R1_VERSION_PATCH 0

namespace r1 {
inline constexpr const char* version_string = "0.1.0";
}  // namespace r1
