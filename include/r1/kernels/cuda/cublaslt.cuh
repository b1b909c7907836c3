// SPDX-License-Identifier: MIT
// Definitions of the cuBLASLt policy (declared in cublaslt.hpp): handle cache, algorithm cache,
// matrix layouts and the two GEMMs. Host code only; src/cuda/cublaslt.cu exports them.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <array>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>

#include "r1/kernels/cuda/common.cuh"
#include "r1/kernels/cuda/common.hpp"
#include "r1/kernels/cuda/cublaslt.hpp"
#include "r1/tensor/memory.hpp"

namespace r1::cuda::cublaslt {

namespace detail {
using r1::cuda::detail::alignment_of;
using r1::cuda::detail::ceil_div;
using r1::cuda::detail::row_stride;

[[noreturn]] inline void cublas_fail(cublasStatus_t s, const char* expr, const char* file, int line) {
  fail("cublaslt", expr, " failed: ", cublasLtGetStatusName(s), " (", cublasLtGetStatusString(s), ") at ",
       file, ":", line);
}
#define R1_CUBLAS_CHECK(expr)                                                      \
  do {                                                                             \
    const cublasStatus_t r1_st_ = (expr);                                          \
    if (r1_st_ != CUBLAS_STATUS_SUCCESS) [[unlikely]] {                            \
      ::r1::cuda::cublaslt::detail::cublas_fail(r1_st_, #expr, __FILE__, __LINE__); \
    }                                                                              \
  } while (0)

/// The current device's handle. Handles are never destroyed: destroying them from static
/// destructors can run after the CUDA runtime has shut down.
inline cublasLtHandle_t handle() {
  static std::mutex mu;
  static std::array<cublasLtHandle_t, r1::cuda::detail::kMaxDevices> handles{};
  const int dev = r1::cuda::detail::current_device().device;
  std::lock_guard<std::mutex> lock(mu);
  if (!handles[size_t(dev)]) R1_CUBLAS_CHECK(cublasLtCreate(&handles[size_t(dev)]));
  return handles[size_t(dev)];
}

// RAII owners of the per-call descriptors (cheap host objects; the algorithm is what is cached).
struct MatmulDesc {
  cublasLtMatmulDesc_t d = nullptr;
  MatmulDesc(cublasComputeType_t c, cudaDataType_t s) { R1_CUBLAS_CHECK(cublasLtMatmulDescCreate(&d, c, s)); }
  ~MatmulDesc() { cublasLtMatmulDescDestroy(d); }
  MatmulDesc(const MatmulDesc&) = delete;
  MatmulDesc& operator=(const MatmulDesc&) = delete;
  template <class T>
  void set(cublasLtMatmulDescAttributes_t a, const T& v) {
    R1_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d, a, &v, sizeof(v)));
  }
};
struct Layout {
  cublasLtMatrixLayout_t l = nullptr;
  Layout(cudaDataType_t t, uint64_t rows, uint64_t cols, int64_t ld) {
    R1_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, t, rows, cols, ld));
  }
  ~Layout() { cublasLtMatrixLayoutDestroy(l); }
  Layout(const Layout&) = delete;
  Layout& operator=(const Layout&) = delete;
};
struct Preference {
  cublasLtMatmulPreference_t p = nullptr;
  Preference() { R1_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&p)); }
  ~Preference() { cublasLtMatmulPreferenceDestroy(p); }
  Preference(const Preference&) = delete;
  Preference& operator=(const Preference&) = delete;
  template <class T>
  void set(cublasLtMatmulPreferenceAttributes_t a, const T& v) {
    R1_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(p, a, &v, sizeof(v)));
  }
};

/// Everything cuBLASLt's heuristic looks at for one call.
struct PlanKey {
  int device, kind;  // kind: 0 bf16->bf16, 1 bf16->f32, 2 fp8 block-scaled -> bf16
  int64_t m, n, k, ldx, ldw, ldy;
  int align_x, align_w, align_y;
  auto tie() const { return std::tie(device, kind, m, n, k, ldx, ldw, ldy, align_x, align_w, align_y); }
  bool operator<(const PlanKey& o) const { return tie() < o.tie(); }
};
struct Plan {
  cublasLtMatmulAlgo_t algo;
  std::size_t workspace;
};

/// Upper bound on the workspace an algorithm may ask for (NVIDIA recommends 32 MiB on Hopper).
inline constexpr std::size_t kMaxWorkspace = std::size_t(32) << 20;

/// The algorithm for one call, from a cache keyed by everything cuBLASLt's heuristic looks at
/// (`Key`: ordered with operator<; one cache per key type), or from the heuristic on a key's first
/// call; nullopt when cuBLASLt has none for this shape, layout and alignment (cached too, so asking
/// again is cheap). `align_*` are the operands' alignments in bytes (A, B, and C = D).
template <class Key>
std::optional<Plan> plan_for(const Key& key, int align_a, int align_b, int align_d, cublasLtHandle_t h,
                             const MatmulDesc& desc, const Layout& a, const Layout& b, const Layout& d) {
  static std::mutex mu;
  static std::map<Key, std::optional<Plan>> cache;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  Preference pref;
  pref.set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, kMaxWorkspace);
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, uint32_t(align_a));
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, uint32_t(align_b));
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, uint32_t(align_d));
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, uint32_t(align_d));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(h, desc.d, a.l, b.l, d.l, d.l, pref.p, 1, &result, &found);
  if (st != CUBLAS_STATUS_NOT_SUPPORTED) R1_CUBLAS_CHECK(st);
  std::optional<Plan> plan;
  if (st == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
    plan = Plan{result.algo, result.workspaceSize};
  }
  std::lock_guard<std::mutex> lock(mu);
  cache.emplace(key, plan);
  return plan;
}

/// The linear layers' call: A is the weight, B the activations.
inline std::optional<Plan> plan_for(const PlanKey& key, cublasLtHandle_t h, const MatmulDesc& desc, const Layout& a,
                                    const Layout& b, const Layout& d) {
  return plan_for(key, key.align_w, key.align_x, key.align_y, h, desc, a, b, d);
}

/// The error message for a call cuBLASLt has no algorithm for.
inline std::string no_algorithm(const PlanKey& key) {
  return ::r1::detail::str_cat("cuBLASLt has no algorithm for M = ", key.m, ", N = ", key.n, ", K = ", key.k,
                               " (row strides x ", key.ldx, ", w ", key.ldw, ", y ", key.ldy, "; alignments ",
                               key.align_x, "/", key.align_w, "/", key.align_y, " bytes) on this GPU");
}

/// Enqueues the matmul D = A . B on `stream` with the plan's workspace from the device pool.
inline void run(cublasLtHandle_t h, const MatmulDesc& desc, const Plan& plan, const void* a, const Layout& la,
                const void* b, const Layout& lb, void* d, const Layout& ld, stream_t stream) {
  const float alpha = 1.0f, beta = 0.0f;
  void* ws = plan.workspace ? device_alloc(plan.workspace, stream) : nullptr;
  const cublasStatus_t st = cublasLtMatmul(h, desc.d, &alpha, a, la.l, b, lb.l, &beta, d, ld.l, d, ld.l,
                                           &plan.algo, ws, plan.workspace, stream);
  device_free(ws, plan.workspace, stream);  // ordered after the matmul on the same stream
  R1_CUBLAS_CHECK(st);
}

template <class T, int R>
void require_device(const View<T, R>& v, const char* op, const char* name) {
  require_space(v, Space::cuda, op, name);
}
}  // namespace detail

/// cublaslt::linear, or false (and the reason in *why) when cuBLASLt has no algorithm for the
/// call: then nothing was enqueued. Bad arguments throw.
template <class TY>
bool try_linear_impl(View<const bf16, 2> x, View<const bf16, 2> w, View<TY, 2> y, stream_t stream, std::string* why) {
  static_assert(std::is_same_v<TY, bf16> || std::is_same_v<TY, float>, "cublaslt::linear: y is bf16 or f32");
  const char* op = "cublaslt.linear";
  detail::require_device(x, op, "x");
  detail::require_device(w, op, "weight");
  detail::require_device(y, op, "y");
  r1::cuda::detail::require_matrix(x, op, "x");
  r1::cuda::detail::require_matrix(w, op, "weight");
  r1::cuda::detail::require_matrix(y, op, "y");
  const int64_t m = x.shape[0], k = x.shape[1], n = w.shape[0];
  R1_CHECK(w.shape[1] == k, op, "x has ", k, " input features, weight has ", w.shape[1]);
  R1_CHECK(y.shape[0] == m && y.shape[1] == n, op, "y has shape [", y.shape[0], ", ", y.shape[1],
           "], expected [", m, ", ", n, "]");
  R1_CHECK(k > 0, op, "K = 0 (cuBLASLt needs a non-empty reduction)");
  if (m == 0 || n == 0) return true;
  constexpr bool f32_out = std::is_same_v<TY, float>;
  const cudaDataType_t ty = f32_out ? CUDA_R_32F : CUDA_R_16BF;
  const int64_t ldx = detail::row_stride(x), ldw = detail::row_stride(w), ldy = detail::row_stride(y);
  detail::MatmulDesc desc(CUBLAS_COMPUTE_32F, CUDA_R_32F);
  desc.set(CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T);
  desc.set(CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N);
  const detail::Layout la(CUDA_R_16BF, uint64_t(k), uint64_t(n), ldw);  // w: K x N column-major
  const detail::Layout lb(CUDA_R_16BF, uint64_t(k), uint64_t(m), ldx);  // x: K x M column-major
  const detail::Layout ld(ty, uint64_t(n), uint64_t(m), ldy);           // y: N x M column-major
  const cublasLtHandle_t h = detail::handle();
  const detail::PlanKey key{r1::cuda::detail::current_device().device, f32_out ? 1 : 0, m, n, k, ldx, ldw, ldy,
                            detail::alignment_of(x.data), detail::alignment_of(w.data),
                            detail::alignment_of(y.data)};
  const std::optional<detail::Plan> plan = detail::plan_for(key, h, desc, la, lb, ld);
  if (!plan) {
    if (why) *why = detail::no_algorithm(key);
    return false;
  }
  detail::run(h, desc, *plan, w.data, la, x.data, lb, y.data, ld, stream);
  return true;
}

template <class TY>
bool try_linear(View<const bf16, 2> x, View<const bf16, 2> w, View<TY, 2> y, stream_t stream) {
  return try_linear_impl(x, w, y, stream, nullptr);
}

template <class TY>
void linear(View<const bf16, 2> x, View<const bf16, 2> w, View<TY, 2> y, stream_t stream) {
  std::string why;
  R1_CHECK(try_linear_impl(x, w, y, stream, &why), "cublaslt.linear", why);
}

/// Implementation of fp8_block_unsupported (exported by src/cuda/cublaslt.cu).
inline std::string fp8_block_unsupported_impl(View<const float, 2> xs, View<const float, 2> ws, int64_t m) {
  const auto& dev = r1::cuda::detail::current_device();
  if (dev.cc_major != 9) {
    return ::r1::detail::str_cat("cuBLASLt's 128x128 / 1x128 FP8 block scaling runs on Hopper (sm_90); this GPU is sm_",
                                 dev.cc_major, dev.cc_minor);
  }
  const int64_t groups = xs.shape[1];
  // cuBLASLt takes no strides for scale tensors: activation scales are [K/128][M] with M contiguous,
  // weight scales [ceil(N/128)][K/128] with K/128 contiguous (torch._scaled_mm's layouts).
  const bool xs_ok = (m <= 1 || xs.stride[0] == 1) && (groups <= 1 || xs.stride[1] == m);
  if (!xs_ok) {
    return ::r1::detail::str_cat("activation scales must be MN-major and dense (strides {1, ", m, "}), got {",
                                 xs.stride[0], ", ", xs.stride[1], "}");
  }
  const bool ws_ok = ws.shape[0] <= 1 || ws.stride[0] == ws.shape[1];
  if (!ws_ok || !ws.rows_contiguous()) {
    return ::r1::detail::str_cat("weight scales must be contiguous row-major, got strides {", ws.stride[0], ", ",
                                 ws.stride[1], "}");
  }
  return {};
}

/// Implementation of (try_)linear_fp8_block (exported by src/cuda/cublaslt.cu): false (and the
/// reason in *why) when cuBLASLt has no algorithm for the call; then nothing was enqueued.
inline bool linear_fp8_block_impl(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const fp8_e4m3, 2> wq,
                                  View<const float, 2> ws, View<bf16, 2> y, stream_t stream, std::string* why) {
  const char* op = "cublaslt.linear_fp8";
  detail::require_device(xq, op, "xq");
  detail::require_device(xs, op, "x scale");
  detail::require_device(wq, op, "weight");
  detail::require_device(ws, op, "weight_scale_inv");
  detail::require_device(y, op, "y");
  r1::cuda::detail::require_matrix(xq, op, "xq");
  r1::cuda::detail::require_matrix(wq, op, "weight");
  r1::cuda::detail::require_matrix(y, op, "y");
  const int64_t m = xq.shape[0], k = xq.shape[1], n = wq.shape[0];
  R1_CHECK(wq.shape[1] == k, op, "xq has ", k, " input features, weight has ", wq.shape[1]);
  R1_CHECK(k % 128 == 0 && k > 0, op, "K = ", k, " is not a positive multiple of 128");
  R1_CHECK(y.shape[0] == m && y.shape[1] == n, op, "y has shape [", y.shape[0], ", ", y.shape[1],
           "], expected [", m, ", ", n, "]");
  R1_CHECK(xs.shape[0] == m && xs.shape[1] == k / 128, op, "x scale has shape [", xs.shape[0], ", ",
           xs.shape[1], "], expected [", m, ", ", k / 128, "]");
  R1_CHECK(ws.shape[0] == detail::ceil_div(n, 128) && ws.shape[1] == k / 128, op, "weight_scale_inv has shape [",
           ws.shape[0], ", ", ws.shape[1], "], expected [", detail::ceil_div(n, 128), ", ", k / 128, "]");
  const std::string layout = fp8_block_unsupported_impl(xs, ws, m);
  R1_CHECK(layout.empty(), op, layout);
  if (m == 0 || n == 0) return true;
  const int64_t ldx = detail::row_stride(xq), ldw = detail::row_stride(wq), ldy = detail::row_stride(y);
  detail::MatmulDesc desc(CUBLAS_COMPUTE_32F, CUDA_R_32F);
  desc.set(CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T);
  desc.set(CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N);
  desc.set(CUBLASLT_MATMUL_DESC_A_SCALE_MODE, int32_t(CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F));
  desc.set(CUBLASLT_MATMUL_DESC_B_SCALE_MODE, int32_t(CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F));
  const void* a_scale = ws.data;
  const void* b_scale = xs.data;
  desc.set(CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, a_scale);
  desc.set(CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, b_scale);
  const detail::Layout la(CUDA_R_8F_E4M3, uint64_t(k), uint64_t(n), ldw);
  const detail::Layout lb(CUDA_R_8F_E4M3, uint64_t(k), uint64_t(m), ldx);
  const detail::Layout ld(CUDA_R_16BF, uint64_t(n), uint64_t(m), ldy);
  const cublasLtHandle_t h = detail::handle();
  const detail::PlanKey key{r1::cuda::detail::current_device().device, 2, m, n, k, ldx, ldw, ldy,
                            detail::alignment_of(xq.data), detail::alignment_of(wq.data),
                            detail::alignment_of(y.data)};
  const std::optional<detail::Plan> plan = detail::plan_for(key, h, desc, la, lb, ld);
  if (!plan) {
    if (why) *why = detail::no_algorithm(key);
    return false;
  }
  detail::run(h, desc, *plan, wq.data, la, xq.data, lb, y.data, ld, stream);
  return true;
}

}  // namespace r1::cuda::cublaslt
