// SPDX-License-Identifier: MIT
// The CUDA runtime as seen from host code: R1_CUDA_CHECK, RAII streams and events, device queries.
// Compiles without CUDA (R1_WITH_CUDA == 0): then there are no devices and every call that would
// need one throws an r1::Error that says r1 was built without CUDA.
#pragma once

#include <string>

#include "r1/core/config.hpp"
#include "r1/core/error.hpp"

#if R1_WITH_CUDA
#include <cuda_runtime_api.h>
#else
struct CUstream_st;  // same opaque type as CUDA's, so signatures match in both builds
struct CUevent_st;
#endif

namespace r1 {

/// A CUDA stream handle in both builds (cudaStream_t when CUDA is available).
using stream_t = CUstream_st*;

#if R1_WITH_CUDA
namespace detail {
[[noreturn]] inline void cuda_fail(cudaError_t e, const char* expr, const char* file, int line) {
  fail("cuda", expr, " failed: ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ") at ", file,
       ":", line);
}
}  // namespace detail
/// Checks a cudaError_t-returning expression; throws r1::Error naming the call and the error.
#define R1_CUDA_CHECK(expr)                                                   \
  do {                                                                        \
    const cudaError_t r1_err_ = (expr);                                       \
    if (r1_err_ != cudaSuccess) [[unlikely]] {                                \
      ::r1::detail::cuda_fail(r1_err_, #expr, __FILE__, __LINE__);            \
    }                                                                         \
  } while (0)
/// After a kernel launch: catches launch-configuration errors immediately.
#define R1_CUDA_CHECK_LAUNCH() R1_CUDA_CHECK(cudaGetLastError())
#endif

[[noreturn]] inline void no_cuda(const char* op) {
  fail(op, "this build of r1 has no CUDA support (configure with CUDA and R1_WITH_CUDA=1)");
}

/// Number of usable CUDA devices; 0 without CUDA, without a driver or without a GPU.
inline int cuda_device_count() {
#if R1_WITH_CUDA
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
#else
  return 0;
#endif
}

/// Owning CUDA stream (non-blocking with respect to the legacy default stream).
class Stream {
 public:
  Stream() {
#if R1_WITH_CUDA
    R1_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking));
#else
    no_cuda("stream.create");
#endif
  }
  ~Stream() {
#if R1_WITH_CUDA
    if (s_) cudaStreamDestroy(s_);
#endif
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  stream_t get() const { return s_; }
  operator stream_t() const { return s_; }
  void sync() const {
#if R1_WITH_CUDA
    R1_CUDA_CHECK(cudaStreamSynchronize(s_));
#endif
  }

 private:
  stream_t s_ = nullptr;
};

/// Owning CUDA event with timing enabled; `ms_since(start)` is the elapsed device time.
class Event {
 public:
  Event() {
#if R1_WITH_CUDA
    R1_CUDA_CHECK(cudaEventCreate(&e_));
#else
    no_cuda("event.create");
#endif
  }
  ~Event() {
#if R1_WITH_CUDA
    if (e_) cudaEventDestroy(e_);
#endif
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(stream_t s) {
#if R1_WITH_CUDA
    R1_CUDA_CHECK(cudaEventRecord(e_, s));
#else
    (void)s;
#endif
  }
  /// Milliseconds between `start` and this event (waits for this event).
  float ms_since(const Event& start) const {
#if R1_WITH_CUDA
    R1_CUDA_CHECK(cudaEventSynchronize(e_));
    float ms = 0;
    R1_CUDA_CHECK(cudaEventElapsedTime(&ms, start.e_, e_));
    return ms;
#else
    (void)start;
    return 0;
#endif
  }

 private:
  CUevent_st* e_ = nullptr;
};

}  // namespace r1
