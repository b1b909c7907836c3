// SPDX-License-Identifier: MIT
// Workspace: the device scratch of a model forward, a bump allocator over pooled device chunks.
//
// Why not Tensor::empty per intermediate: a decode step is captured once in a CUDA graph and
// replayed, so its intermediates must sit at the same addresses on every replay and nothing may be
// allocated inside the captured region. A forward calls reset() first and then take()s its buffers
// in a fixed order; the same shapes give the same addresses. When a forward needs more than the
// current chunk, another chunk is added (never during capture: freeze() turns that into an error),
// and the next reset() merges everything into one chunk of the total size, so after one eager
// warm-up step a forward of that shape fits in one chunk and capture allocates nothing.
// Memory is freed stream-ordered on the workspace's stream. Host-only code (no CUDA syntax).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "r1/core/error.hpp"
#include "r1/tensor/tensor.hpp"

namespace r1 {

class Workspace {
 public:
  Workspace() = default;
  explicit Workspace(stream_t stream, int64_t initial_bytes = 0) : stream_(stream) {
    if (initial_bytes > 0) chunks_.push_back(Tensor::empty(DType::u8, {initial_bytes}, Space::cuda, stream_));
  }

  /// Starts a forward: every buffer taken before is dead. Merges the chunks into one when the
  /// last forward needed more than the first chunk.
  void reset() {
    if (chunks_.size() > 1) {
      R1_CHECK(!frozen_, "workspace", "cannot grow during CUDA graph capture");
      const int64_t total = capacity();
      chunks_.clear();  // freed on stream_, ordered after the work that used them
      chunks_.push_back(Tensor::empty(DType::u8, {total}, Space::cuda, stream_));
    }
    chunk_ = 0;
    used_ = 0;
  }

  /// Uninitialized device buffer of `shape`, 256-byte aligned, valid until the next reset().
  Tensor take(DType dtype, const Shape& shape) {
    const int64_t bytes = std::max<int64_t>(256, (shape.numel() * int64_t(dtype_size(dtype)) + 255) / 256 * 256);
    while (chunk_ < chunks_.size() && used_ + bytes > chunks_[chunk_].size(0)) {
      ++chunk_;
      used_ = 0;
    }
    if (chunk_ == chunks_.size()) {
      R1_CHECK(!frozen_, "workspace", "a forward captured in a CUDA graph needs ", bytes,
               " more bytes of scratch than its eager warm-up did (shapes changed between warm-up and capture)");
      chunks_.push_back(Tensor::empty(DType::u8, {std::max(bytes, std::max<int64_t>(capacity(), int64_t(1) << 20))},
                                      Space::cuda, stream_));
    }
    char* p = static_cast<char*>(chunks_[chunk_].data()) + used_;
    used_ += bytes;
    return Tensor::borrow(p, dtype, shape, Space::cuda, nullptr);
  }
  Tensor take_zeroed(DType dtype, const Shape& shape) {
    Tensor t = take(dtype, shape);
    t.fill_bytes(0, stream_);
    return t;
  }

  /// While frozen (during graph capture), growth is an error instead of an allocation.
  void freeze(bool on) { frozen_ = on; }
  stream_t stream() const { return stream_; }
  /// Bytes in all chunks.
  int64_t capacity() const {
    int64_t total = 0;
    for (const Tensor& c : chunks_) total += c.size(0);
    return total;
  }

 private:
  stream_t stream_ = nullptr;
  std::vector<Tensor> chunks_;  // each [bytes] u8, device
  size_t chunk_ = 0;
  int64_t used_ = 0;
  bool frozen_ = false;
};

}  // namespace r1
