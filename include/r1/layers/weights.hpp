// SPDX-License-Identifier: MIT
// Where layer weights come from. Layers load from any WeightSource: a type with
//   bool has(std::string_view name) const;   Tensor get(std::string_view name) const;
// r1::io::Checkpoint (a checkpoint directory) is one; TensorMap (tensors in memory) is another, for
// tests and for models built in code. Loading checks every tensor's dtype and shape and names the
// tensor and what was expected when something is missing or wrong.
#pragma once

#include <concepts>
#include <cstring>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>

#include "r1/core/error.hpp"
#include "r1/tensor/tensor.hpp"

namespace r1 {

template <class S>
concept WeightSource = requires(const S& s, std::string_view name) {
  { s.has(name) } -> std::convertible_to<bool>;
  { s.get(name) } -> std::convertible_to<Tensor>;
};

/// Named tensors held in memory: a WeightSource for tests and hand-built models.
class TensorMap {
 public:
  void set(const std::string& name, Tensor t) { tensors_[name] = std::move(t); }
  bool has(std::string_view name) const { return tensors_.find(name) != tensors_.end(); }
  Tensor get(std::string_view name) const {
    auto it = tensors_.find(name);
    R1_CHECK(it != tensors_.end(), "checkpoint", "missing tensor ", name);
    return it->second;
  }
  void erase(std::string_view name) {
    auto it = tensors_.find(name);
    if (it != tensors_.end()) tensors_.erase(it);
  }
  const std::map<std::string, Tensor, std::less<>>& tensors() const { return tensors_; }

 private:
  std::map<std::string, Tensor, std::less<>> tensors_;
};

namespace detail {
inline std::string dtype_set(std::initializer_list<DType> dtypes) {
  std::string s;
  for (DType d : dtypes) s += (s.empty() ? "" : " or ") + std::string(dtype_name(d));
  return s;
}
}  // namespace detail

/// Fetches `name` from `src` and checks that its dtype is one of `dtypes` and its shape `shape`.
template <WeightSource S>
Tensor load_tensor(const S& src, const std::string& name, std::initializer_list<DType> dtypes,
                   const Shape& shape) {
  R1_CHECK(src.has(name), "checkpoint", "missing tensor ", name, " (expected ",
           detail::dtype_set(dtypes), " ", shape.str(), ")");
  Tensor t = src.get(name);  // as stored
  bool dtype_ok = false;
  for (DType d : dtypes) dtype_ok = dtype_ok || d == t.dtype();
  R1_CHECK(dtype_ok, "checkpoint", "tensor ", name, " has dtype ", dtype_name(t.dtype()),
           ", expected ", detail::dtype_set(dtypes), " ", shape.str());
  R1_CHECK(t.shape() == shape, "checkpoint", "tensor ", name, " has shape ", t.shape().str(),
           ", expected ", shape.str());
  return t;
}

/// A host f32 copy of a floating-point tensor (f32, bf16, f16), made once at load time so the
/// host kernels read fp32 directly.
inline Tensor host_f32_copy(const Tensor& t) {
  Tensor src = t.space() == Space::host ? t.contiguous() : t.to(Space::host);  // same shape as t
  Tensor out = Tensor::empty(DType::f32, t.shape());                              // same shape as t
  float* o = out.data_as<float>();
  const int64_t n = t.numel();
  switch (src.dtype()) {
    case DType::f32: std::memcpy(o, src.data(), std::size_t(n) * 4); break;
    case DType::bf16: for (int64_t i = 0; i < n; ++i) o[i] = float(src.data_as<bf16>()[i]); break;
    case DType::f16: for (int64_t i = 0; i < n; ++i) o[i] = float(src.data_as<fp16>()[i]); break;
    default: fail("weights", "cannot convert a ", dtype_name(src.dtype()), " tensor to f32");
  }
  return out;
}

}  // namespace r1
