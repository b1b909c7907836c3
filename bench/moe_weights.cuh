// SPDX-License-Identifier: MIT
// One DeepSeek-R1 MoE layer's routed-expert weights on the device (256 experts, hidden 7168,
// moe_inter 2048; gate and up stacked as one [E, 2 * inter, hidden] tensor), bf16 and FP8 with
// 128 x 128 scales, made once per benchmark process on first use. Shared by grouped_gemm_bench
// (the GEMMs alone) and moe_bench (the whole routed layer).
#pragma once

#include <cstdint>

#include "bench_common.cuh"

namespace r1::bench::moe {

inline constexpr int64_t kExperts = 256, kTopK = 8, kHidden = 7168, kInter = 2048;

struct Bf16Experts {
  Tensor w13 = random_device(DType::bf16, {kExperts, 2 * kInter, kHidden}, 11, 0.02f);  // [E, 2 * inter, hidden]: gate ; up
  Tensor w2 = random_device(DType::bf16, {kExperts, kHidden, kInter}, 12, 0.02f);       // [E, hidden, inter]
};
struct Fp8Experts {
  Tensor q13 = random_device(DType::f8_e4m3, {kExperts, 2 * kInter, kHidden}, 13);         // [E, 2 * inter, hidden]
  Tensor s13 = random_scales_device({kExperts, 2 * kInter / 128, kHidden / 128}, 14);      // [E, 32, 56]
  Tensor q2 = random_device(DType::f8_e4m3, {kExperts, kHidden, kInter}, 15);              // [E, hidden, inter]
  Tensor s2 = random_scales_device({kExperts, kHidden / 128, kInter / 128}, 16);           // [E, 56, 16]
};
inline Bf16Experts& bf16_experts() {
  static Bf16Experts e;
  return e;
}
inline Fp8Experts& fp8_experts() {
  static Fp8Experts e;
  return e;
}

}  // namespace r1::bench::moe
