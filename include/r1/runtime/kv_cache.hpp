// SPDX-License-Identifier: MIT
// LatentKvCache: the per-layer latent cache of one sequence, in FlashMLA's paged layout (r1-spec
// §3.3): each layer has a pool of pages [num_pages, page_size, kv_lora_rank + rope_dim], and the
// sequence has one block table (logical page -> physical page) shared by all layers. Pages are
// taken from a free list as the sequence grows and returned when it is truncated (speculative
// decoding's rollback), so the same structure extends to several sequences sharing one pool and to
// device memory (Space::cuda pools of BF16 rows in FlashMLA's 64-token pages; the host keeps F64
// rows, its activation precision).
#pragma once

#include <cstdint>
#include <vector>

#include "r1/layers/mla.hpp"
#include "r1/tensor/tensor.hpp"

namespace r1 {

class LatentKvCache {
 public:
  LatentKvCache() = default;
  /// @param layers     number of attention layers sharing the block table
  /// @param width      row width (kv_lora_rank + qk_rope_head_dim)
  /// @param max_tokens capacity of the sequence
  /// @param page_size  tokens per page (FlashMLA uses 64)
  LatentKvCache(int layers, int64_t width, int64_t max_tokens, int64_t page_size = 64, Space space = Space::host)
      : width_(width), page_size_(page_size) {
    R1_CHECK(layers > 0 && width > 0 && max_tokens > 0 && page_size > 0, "kv_cache", "layers (", layers,
             "), width (", width, "), max_tokens (", max_tokens, ") and page_size (", page_size,
             ") must be positive");
    const int64_t pages = (max_tokens + page_size - 1) / page_size;
    const DType dtype = space == Space::host ? kHostActDType : DType::bf16;
    for (int l = 0; l < layers; ++l) pools_.push_back(Tensor::zeros(dtype, {pages, page_size, width}, space));
    block_table_.assign(size_t(pages), -1);
    for (int64_t p = pages - 1; p >= 0; --p) free_.push_back(int32_t(p));
  }

  int layers() const { return int(pools_.size()); }
  int64_t length() const { return length_; }
  int64_t capacity() const { return int64_t(block_table_.size()) * page_size_; }
  int64_t page_size() const { return page_size_; }
  int64_t width() const { return width_; }
  int64_t pages_in_use() const { return int64_t(block_table_.size() - free_.size()); }

  /// Makes room for `tokens` more tokens (mapping pages as needed) and returns one reference per
  /// layer for a forward that writes positions length() .. length()+tokens-1; call commit(tokens)
  /// after it.
  std::vector<LatentCacheRef> prepare(int64_t tokens) {
    R1_CHECK(tokens >= 0 && length_ + tokens <= capacity(), "kv_cache", "cannot hold ", length_ + tokens,
             " tokens: capacity is ", capacity(), " (raise the cache's max_tokens)");
    const int64_t need = (length_ + tokens + page_size_ - 1) / page_size_;
    for (int64_t b = 0; b < need; ++b) {
      if (block_table_[size_t(b)] < 0) {
        block_table_[size_t(b)] = free_.back();
        free_.pop_back();
      }
    }
    std::vector<LatentCacheRef> refs;
    refs.reserve(pools_.size());
    const auto table = make_view<1>(static_cast<const int32_t*>(block_table_.data()), {int64_t(block_table_.size())});
    for (const Tensor& p : pools_) refs.push_back(LatentCacheRef{p, table});
    return refs;
  }
  /// Records that a forward wrote `tokens` rows.
  void commit(int64_t tokens) {
    R1_CHECK(tokens >= 0 && length_ + tokens <= capacity(), "kv_cache", "commit of ", tokens, " tokens past capacity");
    length_ += tokens;
  }
  /// Forgets tokens from position `n` on (rollback) and returns whole pages past it to the pool.
  void truncate(int64_t n) {
    R1_CHECK(n >= 0 && n <= length_, "kv_cache", "cannot truncate ", length_, " tokens to ", n);
    length_ = n;
    for (int64_t b = (n + page_size_ - 1) / page_size_; b < int64_t(block_table_.size()); ++b) {
      if (block_table_[size_t(b)] >= 0) {
        free_.push_back(block_table_[size_t(b)]);
        block_table_[size_t(b)] = -1;
      }
    }
  }

 private:
  int64_t width_ = 0, page_size_ = 64, length_ = 0;
  std::vector<Tensor> pools_;         // per layer: [num_pages, page_size, width] (F64 host, BF16 device)
  std::vector<int32_t> block_table_;  // [max_pages] physical page of each logical page, -1 unmapped
  std::vector<int32_t> free_;         // physical pages not in use
};

}  // namespace r1
