// SPDX-License-Identifier: MIT
// Which implementation runs a GEMM on the GPU: the vendor's (cuBLASLt) or r1's own kernels.
// Model code picks at compile time with a policy tag (`r1::cuda::linear<gemm::CublasLt>(...)`) or
// at run time with a GemmBackend value; `automatic` applies a per-shape default that follows the
// measurements in docs/benchmarks.md ("Dispatch"). Compiles with g++ alone.
#pragma once

#include <concepts>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "r1/core/error.hpp"

namespace r1::cuda {

enum class GemmBackend : uint8_t {
  automatic,  ///< per-shape default (gemm_default_backend); R1_GEMM_BACKEND=<name> overrides it
  cublaslt,   ///< NVIDIA cuBLASLt: the vendor baseline
  own,        ///< r1's own kernel, the best variant this GPU runs: from kOwnWgmmaMinRows rows on
              ///< sm_90a machine code the Hopper kernels of own_wgmma (dense bf16 with bf16 output,
              ///< FP8), otherwise the mma.sync kernel
  own_sm80,   ///< r1's own kernel with exactly the instructions an sm_80 GPU runs (bf16/f16
              ///< mma.sync, FP8 decoded in registers), on any GPU: tests the portable path
  own_wgmma,  ///< r1's Hopper kernels (TMA + wgmma, sm_90a machine code): the dense FP8 GEMM, the
              ///< grouped bf16 / FP8 GEMMs, and the dense bf16 GEMM with bf16 output (the grouped
              ///< kernel over one expert). `own` picks them for the dense GEMMs from
              ///< kOwnWgmmaMinRows rows; `automatic` picks the grouped ones for large row counts
              ///< (grouped_gemm_default_backend). Where they cannot run the call (no sm_90a code,
              ///< rows off 16 bytes, per-expert pointer tables) the mma.sync kernel does
};

inline const char* gemm_backend_name(GemmBackend b) {
  switch (b) {
    case GemmBackend::automatic: return "automatic";
    case GemmBackend::cublaslt: return "cublaslt";
    case GemmBackend::own: return "own";
    case GemmBackend::own_sm80: return "own_sm80";
    case GemmBackend::own_wgmma: return "own_wgmma";
  }
  return "?";
}

/// Parses a backend name as gemm_backend_name spells it; false for anything else.
inline bool parse_gemm_backend(std::string_view s, GemmBackend& out) {
  for (GemmBackend b : {GemmBackend::automatic, GemmBackend::cublaslt, GemmBackend::own,
                        GemmBackend::own_sm80, GemmBackend::own_wgmma}) {
    if (s == gemm_backend_name(b)) {
      out = b;
      return true;
    }
  }
  return false;
}

/// What a GEMM computes, for the per-shape default.
enum class GemmKind : uint8_t {
  bf16,       ///< bf16 operands, fp32 accumulation
  fp8_block,  ///< DeepSeek FP8: 1x128 activation scales x 128x128 weight scales
};

/// Rows (tokens) up to which r1's own kernel is the default; above them cuBLASLt is. Decode shapes
/// are weight-streaming (memory-bound): r1's split-K kernel keeps every SM busy reading the weight,
/// where a library tiled for large M leaves most of them idle. Prefill shapes are matrix-bound and
/// cuBLASLt's wgmma kernels run them faster than r1's mma.sync kernel. The thresholds are to be set
/// from the measured table in docs/benchmarks.md; they live here and nowhere else.
inline constexpr int64_t kOwnMaxRowsBf16 = 64;
inline constexpr int64_t kOwnMaxRowsFp8 = 128;
/// Rows from which `own` runs a dense GEMM (bf16 with bf16 output, or FP8) on the Hopper TMA +
/// wgmma kernel where sm_90a machine code runs, rather than the mma.sync kernel (built for
/// weight-streaming decode shapes: at 4096 rows it took 1.9-2.9x the wgmma kernel's time for bf16
/// and 3-4x for FP8 on an H100; at 256 rows the wgmma FP8 kernel was already the faster one).
inline constexpr int64_t kOwnWgmmaMinRows = 512;

namespace detail {
// R1_GEMM_BACKEND, read once: lets a whole program be run on one backend for an A/B comparison.
inline GemmBackend env_backend() {
  static const GemmBackend b = [] {
    const char* s = std::getenv("R1_GEMM_BACKEND");
    GemmBackend v = GemmBackend::automatic;
    if (s && *s) {
      R1_CHECK(parse_gemm_backend(s, v), "gemm", "R1_GEMM_BACKEND=", s,
               " is not a backend (automatic, cublaslt, own, own_sm80, own_wgmma)");
    }
    return v;
  }();
  return b;
}
}  // namespace detail

/// The backend `automatic` stands for at this shape: y[M, N] = x[M, K] . w[N, K]^T.
inline GemmBackend gemm_default_backend(GemmKind kind, int64_t m, int64_t n, int64_t k) {
  (void)n;
  (void)k;
  const GemmBackend env = detail::env_backend();
  if (env != GemmBackend::automatic) return env;
  const int64_t own_max = kind == GemmKind::bf16 ? kOwnMaxRowsBf16 : kOwnMaxRowsFp8;
  return m <= own_max ? GemmBackend::own : GemmBackend::cublaslt;
}

/// Grouped (MoE expert) GEMMs: from this many rows in all, and this many rows per expert on
/// average, `automatic` runs r1's Hopper TMA + wgmma grouped kernel (128-row tiles; sm_90a code
/// and stacked weights, else the callers fall back to the mma.sync kernel). Below, the mma.sync
/// kernel, whose tile height follows the rows per expert (decode and short prefill: few rows per
/// expert would leave most of a 128-row tile empty).
inline constexpr int64_t kGroupedWgmmaMinRows = 2048;
inline constexpr int64_t kGroupedWgmmaMinRowsPerExpert = 32;

/// The backend `automatic` stands for in a grouped GEMM of `rows` rows over `experts` experts,
/// [N, K] weights. R1_GEMM_BACKEND overrides it with own, own_sm80 or own_wgmma (cublaslt has no
/// grouped policy, so it leaves grouped GEMMs on this default).
inline GemmBackend grouped_gemm_default_backend(GemmKind kind, int64_t rows, int64_t experts, int64_t n,
                                                int64_t k) {
  (void)kind;
  (void)n;
  (void)k;
  const GemmBackend env = detail::env_backend();
  if (env == GemmBackend::own || env == GemmBackend::own_sm80 || env == GemmBackend::own_wgmma) return env;
  const int64_t active = experts < rows ? experts : rows;  // experts that can have rows
  const int64_t per_expert = active > 0 ? rows / active : 0;
  return rows >= kGroupedWgmmaMinRows && per_expert >= kGroupedWgmmaMinRowsPerExpert ? GemmBackend::own_wgmma
                                                                                       : GemmBackend::own;
}

/// Compile-time GEMM policies: empty tags naming a backend.
namespace gemm {
struct Auto {
  static constexpr GemmBackend backend = GemmBackend::automatic;
};
struct CublasLt {
  static constexpr GemmBackend backend = GemmBackend::cublaslt;
};
struct Own {
  static constexpr GemmBackend backend = GemmBackend::own;
};
struct OwnSm80 {
  static constexpr GemmBackend backend = GemmBackend::own_sm80;
};
struct OwnWgmma {
  static constexpr GemmBackend backend = GemmBackend::own_wgmma;
};
template <class P>
concept Policy = requires {
  { P::backend } -> std::convertible_to<GemmBackend>;
};
}  // namespace gemm

}  // namespace r1::cuda
