// SPDX-License-Identifier: MIT
// The paged latent cache on the device for a batch of sequences, and the per-forward token inputs
// (ids, positions, slots, lengths) that the CUDA model reads from device memory.
//
// DeviceLatentCache: per layer one pool [batch * blocks, page_size, kv_lora + rope] (bf16, or f32
// for a model with f32 activations: CudaDeepseekV3::activation_dtype()) in
// FlashMLA's layout, and one device block table [batch, blocks]. Each sequence reserves the pages
// for its whole capacity when the cache is built (sequence b owns pages b * blocks .. (b + 1) *
// blocks - 1): a decode step captured in a CUDA graph reads the block tables at fixed addresses, so
// they never change after capture, and rolling back a rejected draft is only a shorter length
// (its row is overwritten by the next token). The host keeps each sequence's length and computes
// slots from it; lengths and slots reach the device through StepInputs.
//
// StepInputs: device buffers for up to `max_rows` rows and `max_batch` sequences plus a pinned
// host mirror; upload() copies the host values in one stream-ordered copy and returns the
// DeviceBatch that a forward reads. The ids can stay on the device (with_ids = false): a graph
// replay's sampler writes the next step's ids there itself.
#pragma once

#include "r1/core/config.hpp"

#if R1_WITH_CUDA

#include <cstring>
#include <memory>
#include <vector>

#include "r1/models/deepseek_v3_cuda_layers.hpp"
#include "r1/tensor/tensor.hpp"

namespace r1 {

class DeviceLatentCache {
 public:
  DeviceLatentCache() = default;
  /// @param layers     attention layers sharing the block tables
  /// @param width      row width (kv_lora_rank + qk_rope_head_dim)
  /// @param batch      sequences
  /// @param max_tokens capacity of each sequence
  /// @param dtype      row dtype: the model's activation dtype (bf16 or f32)
  DeviceLatentCache(int layers, int64_t width, int64_t batch, int64_t max_tokens, int64_t page_size, DType dtype,
                    stream_t stream)
      : batch_(batch), page_size_(page_size) {
    R1_CHECK(dtype == DType::bf16 || dtype == DType::f32, "kv_cache", "rows of ", dtype_name(dtype),
             " (bf16 or f32 expected)");
    R1_CHECK(layers > 0 && width > 0 && batch > 0 && max_tokens > 0 && page_size > 0, "kv_cache", "layers (", layers,
             "), width (", width, "), batch (", batch, "), max_tokens (", max_tokens, ") and page_size (", page_size,
             ") must be positive");
    blocks_ = (max_tokens + page_size - 1) / page_size;
    R1_CHECK(batch * blocks_ * page_size < (int64_t(1) << 31), "kv_cache", "batch ", batch, " x ", max_tokens,
             " tokens exceeds the 32-bit slot numbering");
    for (int l = 0; l < layers; ++l)
      pools_.push_back(Tensor::zeros(dtype, {batch * blocks_, page_size, width}, Space::cuda, stream));
    std::vector<int32_t> table(size_t(batch * blocks_));  // [batch, blocks]
    for (size_t i = 0; i < table.size(); ++i) table[i] = int32_t(i);
    tables_ = Tensor::from_vector(table, {batch, blocks_}).to(Space::cuda, stream);
    lengths_.assign(size_t(batch), 0);
  }

  int layers() const { return int(pools_.size()); }
  int64_t batch() const { return batch_; }
  int64_t capacity() const { return blocks_ * page_size_; }
  int64_t page_size() const { return page_size_; }
  int64_t length(int64_t b) const { return lengths_[size_t(b)]; }
  /// Sets sequence b's length (after a forward: += its tokens; rollback: shorter).
  void set_length(int64_t b, int64_t n) {
    R1_CHECK(n >= 0 && n <= capacity(), "kv_cache", "sequence ", b, ": length ", n, " outside [0, ", capacity(),
             "] (raise the cache's max_tokens)");
    lengths_[size_t(b)] = n;
  }
  /// The cache slot of sequence b's token at `pos`.
  int32_t slot(int64_t b, int64_t pos) const {
    R1_CHECK(pos >= 0 && pos < capacity(), "kv_cache", "position ", pos, " outside the capacity ", capacity());
    return int32_t((b * blocks_ + pos / page_size_) * page_size_ + pos % page_size_);
  }
  /// Per layer [batch * blocks, page_size, width] on the device.
  const std::vector<Tensor>& pages() const { return pools_; }
  const Tensor& pages(int layer) const { return pools_[size_t(layer)]; }
  /// [batch, blocks] int32 on the device.
  View<const int32_t, 2> block_tables() const { return tables_.view<const int32_t, 2>(); }

 private:
  int64_t batch_ = 0, page_size_ = 64, blocks_ = 0;
  std::vector<Tensor> pools_;     // per layer [batch * blocks, page_size, width] bf16 or f32
  Tensor tables_;                 // [batch, blocks] int32, device
  std::vector<int64_t> lengths_;  // [batch] host
};

class StepInputs {
 public:
  StepInputs() = default;
  StepInputs(int64_t max_rows, int64_t max_batch, stream_t stream)
      : max_rows_(max_rows), max_batch_(max_batch), stream_(stream) {
    R1_CHECK(max_rows > 0 && max_batch > 0, "step_inputs", "max_rows ", max_rows, " and max_batch ", max_batch,
             " must be positive");
    const int64_t n = 3 * max_rows + max_batch;  // ids | positions | slots | seq_lens
    dev_ = Tensor::zeros(DType::i32, {n}, Space::cuda, stream);
    host_ = std::shared_ptr<int32_t>(static_cast<int32_t*>(pinned_alloc(size_t(n) * 4)), pinned_free);
    std::memset(host_.get(), 0, size_t(n) * 4);
  }

  int32_t* host_ids() const { return host_.get(); }
  int32_t* host_positions() const { return host_.get() + max_rows_; }
  int32_t* host_slots() const { return host_.get() + 2 * max_rows_; }
  int32_t* host_seq_lens() const { return host_.get() + 3 * max_rows_; }
  /// [max_rows] device ids (a sampler may write the next step's ids here).
  View<int32_t, 1> device_ids() const { return dev_.view<int32_t, 1>().slice(0, 0, max_rows_); }

  /// Copies the host values of a forward of `batch` x `tokens` rows (ids too unless `with_ids` is
  /// false) and returns the DeviceBatch over the device copies. The host mirror may be rewritten
  /// once the stream has passed this copy (the generation loop syncs every step).
  DeviceBatch upload(int64_t batch, int64_t tokens, View<const int32_t, 2> block_tables, int64_t start,
                     bool with_ids = true) const {
    const int64_t rows = batch * tokens;
    R1_CHECK(rows <= max_rows_ && batch <= max_batch_, "step_inputs", batch, " x ", tokens, " rows exceed ",
             max_batch_, " sequences / ", max_rows_, " rows");
    int32_t* d = dev_.data_as<int32_t>();
    const int32_t* h = host_.get();
    if (with_ids) R1_CUDA_CHECK(cudaMemcpyAsync(d, h, size_t(rows) * 4, cudaMemcpyHostToDevice, stream_));
    R1_CUDA_CHECK(cudaMemcpyAsync(d + max_rows_, h + max_rows_, size_t(2 * max_rows_ + batch) * 4,
                                  cudaMemcpyHostToDevice, stream_));
    return view(batch, tokens, block_tables, start);
  }
  /// The DeviceBatch over the device buffers as they are (graph capture: no copy).
  DeviceBatch view(int64_t batch, int64_t tokens, View<const int32_t, 2> block_tables, int64_t start) const {
    const int64_t rows = batch * tokens;
    auto all = dev_.view<const int32_t, 1>();
    DeviceBatch b;
    b.batch = batch;
    b.tokens = tokens;
    b.ids = all.slice(0, 0, rows);
    b.positions = all.slice(0, max_rows_, max_rows_ + rows);
    b.slots = all.slice(0, 2 * max_rows_, 2 * max_rows_ + rows);
    b.seq_lens = all.slice(0, 3 * max_rows_, 3 * max_rows_ + batch);
    b.block_tables = block_tables;
    b.start = start;
    return b;
  }

 private:
  int64_t max_rows_ = 0, max_batch_ = 0;
  stream_t stream_ = nullptr;
  Tensor dev_;                     // [3 * max_rows + max_batch] int32, device
  std::shared_ptr<int32_t> host_;  // the same layout, pinned host
};

}  // namespace r1

#endif  // R1_WITH_CUDA
