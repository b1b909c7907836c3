// SPDX-License-Identifier: MIT
// Exec: where and how a layer's forward runs. Layers hold weights; every forward takes an Exec,
// which says which memory space and stream the activations live on, allocates the intermediates
// there (device memory comes from the stream-ordered pool, so "scratch" is pooled), and carries an
// optional hook that sees named intermediates (llama.cpp's cb(name, layer, tensor)) so per-layer
// hidden states can be compared with an oracle.
//
// Layer forwards take and return Tensors, so the activation dtype travels with the data. The host
// path (Space::host) runs the r1::ref kernels on F64 activations: fp64 reproduces the float64
// oracle to ~1e-12 instead of fp32's ~1e-6, which is what lets the host FP8-native path make the
// same e4m3 rounding decisions as the oracle's fp64 simulation (docs/model.md). These layers are
// the host path only: the GPU runs the same ops through the device block of CudaDeepseekV3
// (models/deepseek_v3_cuda*.hpp; docs/architecture.md says why it is a separate assembly), and a
// cuda Exec given to a host layer is an r1::Error that says so.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "r1/core/cuda.hpp"
#include "r1/core/error.hpp"
#include "r1/tensor/tensor.hpp"

namespace r1 {

/// Element type of host activations.
using host_act_t = double;
inline constexpr DType kHostActDType = DType::f64;

/// Called with (name, layer, tensor) for each named intermediate; layer is -1 for model-level
/// tensors. The tensor is only valid during the call (copy it to keep it).
using ActivationHook = std::function<void(std::string_view name, int layer, const Tensor& t)>;

struct Exec {
  Space space = Space::host;
  stream_t stream = nullptr;
  ActivationHook hook;  ///< optional

  /// Uninitialized tensor in this Exec's space.
  Tensor empty(DType dtype, const Shape& shape) const { return Tensor::empty(dtype, shape, space, stream); }
  /// Activation tensor (F64 on the host).
  Tensor act(const Shape& shape) const { return empty(kHostActDType, shape); }

  void emit(std::string_view name, int layer, const Tensor& t) const {
    if (hook) hook(name, layer, t);
  }

  /// Throws unless this Exec runs on the host; `op` names the layer.
  void require_host(const std::string& op) const {
    R1_CHECK(space == Space::host, op,
             "host layers run on the host (Space::host); the GPU model is CudaDeepseekV3 "
             "(r1/models/deepseek_v3_cuda.hpp, r1-generate --device cuda)");
  }
};

/// A host activation tensor as a typed view, with an error naming the layer and the argument.
template <int Rank, class T = const host_act_t>
View<T, Rank> act_view(const Tensor& t, const std::string& op, const char* what) {
  R1_CHECK(t.defined(), op, what, " is an empty tensor");
  R1_CHECK(t.dtype() == kHostActDType && t.rank() == Rank, op, what, " is ", dtype_name(t.dtype()), " ",
           t.shape().str(), ", host layers take rank-", Rank, " ", dtype_name(kHostActDType), " activations");
  R1_CHECK(t.space() == Space::host, op, what, " is in ", space_name(t.space()), " memory");
  return t.view<T, Rank>();
}

}  // namespace r1
