// SPDX-License-Identifier: MIT
// Memory: aligned host allocations, pinned host staging buffers, and a stream-ordered pooled
// device allocator. The device pool is CUDA's own stream-ordered allocator (cudaMallocAsync on the
// device's default memory pool) with its release threshold raised, so freed blocks stay cached in
// the pool and are reused by later allocations on the same stream without a device sync.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

#include "r1/core/cuda.hpp"
#include "r1/core/error.hpp"
#include "r1/tensor/view.hpp"

namespace r1 {

/// Host allocations are 64-byte aligned (a cache line; enough for any SIMD load).
inline constexpr std::size_t kHostAlignment = 64;

inline void* host_alloc(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  const std::size_t rounded = (bytes + kHostAlignment - 1) / kHostAlignment * kHostAlignment;
  R1_CHECK(rounded >= bytes, "host.alloc", "size ", bytes, " overflows");
  void* p = std::aligned_alloc(kHostAlignment, rounded);
  R1_CHECK(p != nullptr, "host.alloc", "out of host memory allocating ", bytes, " bytes");
  return p;
}
inline void host_free(void* p) { std::free(p); }

/// Statistics of the device pool, for progress output and leak tests.
struct DeviceMemoryStats {
  int64_t bytes_in_use = 0;
  int64_t peak_bytes = 0;
  int64_t allocations = 0;
};

namespace detail {
inline std::atomic<int64_t>& device_in_use() {
  static std::atomic<int64_t> v{0};
  return v;
}
inline std::atomic<int64_t>& device_peak() {
  static std::atomic<int64_t> v{0};
  return v;
}
inline std::atomic<int64_t>& device_count() {
  static std::atomic<int64_t> v{0};
  return v;
}
}  // namespace detail

inline DeviceMemoryStats device_memory_stats() {
  return {detail::device_in_use().load(), detail::device_peak().load(),
          detail::device_count().load()};
}

#if R1_WITH_CUDA
namespace detail {
// Raises the current device's default pool release threshold once per device, so memory freed
// with cudaFreeAsync is kept for reuse instead of being returned to the driver at every sync.
inline void configure_pool_once() {
  static thread_local int configured_for = -1;
  int dev = 0;
  R1_CUDA_CHECK(cudaGetDevice(&dev));
  if (configured_for == dev) return;
  cudaMemPool_t pool;
  R1_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, dev));
  uint64_t threshold = UINT64_MAX;
  R1_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  configured_for = dev;
}
}  // namespace detail
#endif

/// Stream-ordered device allocation: the memory is usable by work enqueued on `stream` after
/// this call (and by other streams after synchronizing with it).
inline void* device_alloc(std::size_t bytes, stream_t stream) {
#if R1_WITH_CUDA
  if (bytes == 0) return nullptr;
  detail::configure_pool_once();
  void* p = nullptr;
  const cudaError_t e = cudaMallocAsync(&p, bytes, stream);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    (void)cudaMemGetInfo(&free_b, &total_b);
    fail("cuda.alloc", "cannot allocate ", bytes, " bytes of device memory: ", cudaGetErrorString(e),
         " (free ", free_b, " of ", total_b, " bytes; r1 holds ", detail::device_in_use().load(),
         ")");
  }
  const int64_t now = detail::device_in_use() += int64_t(bytes);
  int64_t peak = detail::device_peak().load();
  while (now > peak && !detail::device_peak().compare_exchange_weak(peak, now)) {
  }
  ++detail::device_count();
  return p;
#else
  (void)bytes;
  (void)stream;
  no_cuda("cuda.alloc");
#endif
}

/// Returns device memory to the pool, ordered after the work already enqueued on `stream`.
inline void device_free(void* p, std::size_t bytes, stream_t stream) noexcept {
#if R1_WITH_CUDA
  if (!p) return;
  (void)cudaFreeAsync(p, stream);
  detail::device_in_use() -= int64_t(bytes);
#else
  (void)p;
  (void)bytes;
  (void)stream;
#endif
}

/// Page-locked host memory, for fast asynchronous host<->device copies.
inline void* pinned_alloc(std::size_t bytes) {
#if R1_WITH_CUDA
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  R1_CUDA_CHECK(cudaMallocHost(&p, bytes));
  return p;
#else
  (void)bytes;
  no_cuda("cuda.pinned_alloc");
#endif
}
inline void pinned_free(void* p) noexcept {
#if R1_WITH_CUDA
  if (p) (void)cudaFreeHost(p);
#else
  (void)p;
#endif
}

/// An allocation with its owner: host (aligned), pinned host, device (pooled), or borrowed
/// memory kept alive by `keepalive` (e.g. a memory-mapped file).
struct Storage {
  enum class Kind : uint8_t { host, pinned, device, borrowed };
  void* ptr = nullptr;
  std::size_t bytes = 0;
  Kind kind = Kind::host;
  stream_t stream = nullptr;         // device: the stream the free is ordered on (must outlive this)
  std::shared_ptr<const void> keepalive;  // borrowed: the owner of the memory
  Space borrowed_space = Space::host;     // borrowed: where that memory is

  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    switch (kind) {
      case Kind::host: host_free(ptr); break;
      case Kind::pinned: pinned_free(ptr); break;
      case Kind::device: device_free(ptr, bytes, stream); break;
      case Kind::borrowed: break;
    }
  }
  Space space() const {
    return kind == Kind::device || (kind == Kind::borrowed && borrowed_space == Space::cuda)
               ? Space::cuda
               : Space::host;
  }

  static std::shared_ptr<Storage> allocate(std::size_t bytes, Space space, stream_t stream = nullptr) {
    auto s = std::make_shared<Storage>();
    s->bytes = bytes;
    if (space == Space::cuda) {
      s->kind = Kind::device;
      s->stream = stream;
      s->ptr = device_alloc(bytes, stream);
    } else {
      s->kind = Kind::host;
      s->ptr = host_alloc(bytes);
    }
    return s;
  }
  static std::shared_ptr<Storage> allocate_pinned(std::size_t bytes) {
    auto s = std::make_shared<Storage>();
    s->bytes = bytes;
    s->kind = Kind::pinned;
    s->ptr = pinned_alloc(bytes);
    return s;
  }
  static std::shared_ptr<Storage> borrow(void* ptr, std::size_t bytes, Space space,
                                         std::shared_ptr<const void> keepalive) {
    auto s = std::make_shared<Storage>();
    s->ptr = ptr;
    s->bytes = bytes;
    s->kind = Kind::borrowed;
    s->keepalive = std::move(keepalive);
    s->borrowed_space = space;
    return s;
  }
};

}  // namespace r1
