// SPDX-License-Identifier: MIT
// Tensor: an owning (reference-counted), type-erased, strided array in host or device memory.
// Layers hold Tensors; kernels take typed Views obtained with `t.view<T, Rank>()`, which checks the
// dtype and rank. Slicing shares storage; `contiguous()`, `to()` and `copy_from()` copy.
#pragma once

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "r1/core/cuda.hpp"
#include "r1/core/dtype.hpp"
#include "r1/core/error.hpp"
#include "r1/tensor/memory.hpp"
#include "r1/tensor/shape.hpp"
#include "r1/tensor/view.hpp"

namespace r1 {

class Tensor {
 public:
  Tensor() = default;

  /// Uninitialized tensor. Device memory comes from the stream-ordered pool on `stream` and returns
  /// to it on `stream` when the last Tensor sharing it goes away, so `stream` must outlive the
  /// memory: long-lived tensors (model weights) belong on a long-lived stream, or on the default
  /// stream (nullptr), as CudaDeepseekV3's weights are.
  static Tensor empty(DType dtype, const Shape& shape, Space space = Space::host,
                      stream_t stream = nullptr) {
    Tensor t;
    t.dtype_ = dtype;
    t.shape_ = shape;
    t.set_contiguous_strides();
    int64_t bytes = 0;
    R1_CHECK(!mul_overflow(shape.numel(), int64_t(dtype_size(dtype)), bytes), "tensor.empty",
             "byte size of ", shape.str(), " x ", dtype_name(dtype), " overflows");
    t.storage_ = Storage::allocate(std::size_t(bytes), space, stream);
    return t;
  }
  /// Zero-filled tensor (stream-ordered memset for device memory).
  static Tensor zeros(DType dtype, const Shape& shape, Space space = Space::host,
                      stream_t stream = nullptr) {
    Tensor t = empty(dtype, shape, space, stream);
    t.fill_bytes(0, stream);
    return t;
  }
  /// Contiguous tensor over memory owned elsewhere; `keepalive` keeps that memory alive.
  static Tensor borrow(void* data, DType dtype, const Shape& shape, Space space,
                       std::shared_ptr<const void> keepalive) {
    Tensor t;
    t.dtype_ = dtype;
    t.shape_ = shape;
    t.set_contiguous_strides();
    t.storage_ = Storage::borrow(data, shape.numel() * dtype_size(dtype), space, std::move(keepalive));
    return t;
  }
  /// Host tensor holding a copy of `values`.
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape) {
    R1_CHECK(shape.numel() == int64_t(values.size()), "tensor.from_vector", "shape ", shape.str(),
             " holds ", shape.numel(), " elements, got ", values.size());
    Tensor t = empty(dtype_v<T>, shape);
    if (!values.empty()) std::memcpy(t.data(), values.data(), values.size() * sizeof(T));
    return t;
  }

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank; }
  int64_t size(int d) const {
    R1_CHECK(d >= 0 && d < shape_.rank, "tensor.size", "dimension ", d, " out of range for rank ",
             shape_.rank);
    return shape_.dims[d];
  }
  int64_t stride(int d) const { return strides_[d]; }
  int64_t numel() const { return shape_.numel(); }
  std::size_t nbytes() const { return std::size_t(numel()) * dtype_size(dtype_); }
  Space space() const { return storage_ ? storage_->space() : Space::host; }
  void* data() const {
    return storage_ ? static_cast<char*>(storage_->ptr) + offset_ * int64_t(dtype_size(dtype_))
                    : nullptr;
  }
  template <class T>
  T* data_as() const {
    R1_CHECK(dtype_v<T> == dtype_, "tensor.data_as", "tensor holds ", dtype_name(dtype_),
             ", requested ", dtype_name(dtype_v<T>));
    return static_cast<T*>(data());
  }

  bool is_contiguous() const {
    int64_t expect = 1;
    for (int i = shape_.rank - 1; i >= 0; --i) {
      if (shape_.dims[i] != 1 && strides_[i] != expect) return false;
      expect *= shape_.dims[i];
    }
    return true;
  }

  /// Typed view; checks dtype (T may be const) and rank.
  template <class T, int Rank>
  View<T, Rank> view() const {
    R1_CHECK(defined(), "tensor.view", "tensor is empty (default-constructed)");
    R1_CHECK(dtype_v<T> == dtype_, "tensor.view", "tensor holds ", dtype_name(dtype_),
             ", requested ", dtype_name(dtype_v<T>));
    R1_CHECK(Rank == shape_.rank, "tensor.view", "tensor has rank ", shape_.rank, " (",
             shape_.str(), "), requested rank ", Rank);
    View<T, Rank> v;
    v.data = static_cast<T*>(data());
    for (int i = 0; i < Rank; ++i) {
      v.shape[i] = shape_.dims[i];
      v.stride[i] = strides_[i];
    }
    v.space = space();
    return v;
  }

  Tensor slice(int dim, int64_t begin, int64_t end) const {
    R1_CHECK(dim >= 0 && dim < shape_.rank, "tensor.slice", "dimension ", dim,
             " out of range for rank ", shape_.rank);
    R1_CHECK(0 <= begin && begin <= end && end <= shape_.dims[dim], "tensor.slice", "range [",
             begin, ", ", end, ") out of bounds for extent ", shape_.dims[dim]);
    Tensor t = *this;
    t.offset_ += begin * strides_[dim];
    t.shape_.dims[dim] = end - begin;
    return t;
  }
  Tensor select(int dim, int64_t i) const {
    Tensor t = slice(dim, i, i + 1);
    for (int d = dim; d + 1 < t.shape_.rank; ++d) {
      t.shape_.dims[d] = t.shape_.dims[d + 1];
      t.strides_[d] = t.strides_[d + 1];
    }
    --t.shape_.rank;
    return t;
  }
  /// Same storage under a new row-major shape; requires contiguity.
  Tensor reshape(const Shape& shape) const {
    R1_CHECK(is_contiguous(), "tensor.reshape", "tensor of shape ", shape_.str(), " is not contiguous");
    R1_CHECK(shape.numel() == numel(), "tensor.reshape", "cannot reshape ", shape_.str(), " into ",
             shape.str());
    Tensor t = *this;
    t.shape_ = shape;
    t.set_contiguous_strides();
    return t;
  }

  /// A contiguous copy in `space` (this tensor itself if it already is one there).
  Tensor to(Space space, stream_t stream = nullptr) const;
  Tensor contiguous(stream_t stream = nullptr) const {
    return is_contiguous() ? *this : to(space(), stream);
  }
  /// Copies `src` (same dtype and shape, any space) into this tensor.
  void copy_from(const Tensor& src, stream_t stream = nullptr);

  void fill_bytes(int byte, stream_t stream = nullptr) {
    R1_CHECK(is_contiguous(), "tensor.fill", "tensor is not contiguous");
    if (nbytes() == 0) return;
    if (space() == Space::host) {
      std::memset(data(), byte, nbytes());
    } else {
#if R1_WITH_CUDA
      R1_CUDA_CHECK(cudaMemsetAsync(data(), byte, nbytes(), stream));
#else
      (void)stream;
      no_cuda("tensor.fill");
#endif
    }
  }

 private:
  void set_contiguous_strides() {
    int64_t s = 1;
    for (int i = shape_.rank - 1; i >= 0; --i) {
      strides_[i] = s;
      s *= shape_.dims[i];
    }
  }

  std::shared_ptr<Storage> storage_;
  DType dtype_ = DType::f32;
  Shape shape_;
  int64_t strides_[kMaxRank] = {};
  int64_t offset_ = 0;  // in elements
};

namespace detail {
// Strided host copy for any rank: walks the destination index space in row-major order.
inline void host_strided_copy(const Tensor& dst, const Tensor& src) {
  const std::size_t es = dtype_size(dst.dtype());
  const int rank = dst.rank();
  const int64_t n = dst.numel();
  int64_t idx[kMaxRank] = {};
  char* d = static_cast<char*>(dst.data());
  const char* s = static_cast<const char*>(src.data());
  for (int64_t k = 0; k < n; ++k) {
    int64_t od = 0, os = 0;
    for (int i = 0; i < rank; ++i) {
      od += idx[i] * dst.stride(i);
      os += idx[i] * src.stride(i);
    }
    std::memcpy(d + od * int64_t(es), s + os * int64_t(es), es);
    for (int i = rank - 1; i >= 0; --i) {
      if (++idx[i] < dst.shape()[i]) break;
      idx[i] = 0;
    }
  }
}
}  // namespace detail

inline void Tensor::copy_from(const Tensor& src, stream_t stream) {
  R1_CHECK(src.dtype() == dtype_, "tensor.copy", "dtype mismatch: destination ",
           dtype_name(dtype_), ", source ", dtype_name(src.dtype()));
  R1_CHECK(src.shape() == shape_, "tensor.copy", "shape mismatch: destination ", shape_.str(),
           ", source ", src.shape().str());
  if (numel() == 0) return;
  const bool both_contiguous = is_contiguous() && src.is_contiguous();
  if (space() == Space::host && src.space() == Space::host) {
    if (both_contiguous) {
      std::memmove(data(), src.data(), nbytes());
    } else {
      detail::host_strided_copy(*this, src);
    }
    return;
  }
#if R1_WITH_CUDA
  R1_CHECK(both_contiguous, "tensor.copy", "copies involving device memory need contiguous tensors (",
           "call contiguous() first)");
  const cudaMemcpyKind kind = src.space() == Space::host
                                  ? (space() == Space::host ? cudaMemcpyHostToHost : cudaMemcpyHostToDevice)
                                  : (space() == Space::host ? cudaMemcpyDeviceToHost
                                                            : cudaMemcpyDeviceToDevice);
  R1_CUDA_CHECK(cudaMemcpyAsync(data(), src.data(), nbytes(), kind, stream));
  // A copy into pageable host memory must be complete before the caller reads it.
  if (space() == Space::host) R1_CUDA_CHECK(cudaStreamSynchronize(stream));
#else
  (void)stream;
  no_cuda("tensor.copy");
#endif
}

inline Tensor Tensor::to(Space space, stream_t stream) const {
  Tensor out = Tensor::empty(dtype_, shape_, space, stream);
  if (space != this->space() && !is_contiguous()) {
    out.copy_from(to(this->space(), stream), stream);  // make contiguous where it lives first
  } else {
    out.copy_from(*this, stream);
  }
  return out;
}

}  // namespace r1
