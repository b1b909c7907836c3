// SPDX-License-Identifier: MIT
// Token embedding layer: a [vocab, dim] table (bf16 or f32), rows copied to f32 activations.
#pragma once

#include <string>

#include "r1/kernels/ref/embedding.hpp"
#include "r1/layers/exec.hpp"
#include "r1/layers/weights.hpp"

namespace r1 {

class Embedding {
 public:
  Embedding() = default;
  Embedding(Tensor table, std::string name) : name_(std::move(name)) {
    R1_CHECK(table.rank() == 2, "embedding", name_, ": table must be 2-D, got ", table.shape().str());
    table_ = table.space() == Space::host ? table.contiguous() : table.to(Space::host);
  }
  template <WeightSource S>
  static Embedding load(const S& src, const std::string& name, int64_t vocab, int64_t dim) {
    return Embedding(load_tensor(src, name, {DType::bf16, DType::f32}, Shape{vocab, dim}), name);
  }

  int64_t vocab() const { return table_.size(0); }
  int64_t dim() const { return table_.size(1); }
  const Tensor& table() const { return table_; }  ///< [vocab, dim] storage dtype

  /// @param ids [tokens] (host memory)
  /// @param out [tokens, dim] activations
  void forward(const Exec& ex, View<const int32_t, 1> ids, const Tensor& out) const {
    ex.require_host(name_);
    auto ov = act_view<2, host_act_t>(out, name_, "output");
    if (table_.dtype() == DType::bf16) {
      ref::embedding(ids, table_.view<const bf16, 2>(), ov);
    } else {
      ref::embedding(ids, table_.view<const float, 2>(), ov);
    }
  }

 private:
  std::string name_;
  Tensor table_;  // [vocab, dim]
};

}  // namespace r1
