// SPDX-License-Identifier: MIT
// Quickstart: the tensor layer and dtypes in a dozen lines. Quantizes a random 256x256 weight to
// FP8 e4m3 with 128x128 block scales the way DeepSeek checkpoints store it, dequantizes it back and
// reports the error; if a GPU is present, round-trips the tensor through device memory.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

#include <r1/r1.hpp>

int main() {
  constexpr int64_t n = 256, k = 256, blk = 128;
  r1::Tensor w = r1::Tensor::empty(r1::DType::f32, {n, k});  // [n, k]
  auto wv = w.view<float, 2>();
  std::mt19937 rng(0);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) wv(i, j) = normal(rng);

  r1::Tensor q = r1::Tensor::empty(r1::DType::f8_e4m3, {n, k});  // [n, k]
  r1::Tensor s = r1::Tensor::empty(r1::DType::f32, {n / blk, k / blk});  // weight_scale_inv
  auto qv = q.view<r1::fp8_e4m3, 2>();
  auto sv = s.view<float, 2>();
  double err2 = 0, ref2 = 0;
  for (int64_t bi = 0; bi < n / blk; ++bi) {
    for (int64_t bj = 0; bj < k / blk; ++bj) {
      float amax = 0;
      for (int64_t i = 0; i < blk; ++i)
        for (int64_t j = 0; j < blk; ++j) amax = std::fmax(amax, std::fabs(wv(bi * blk + i, bj * blk + j)));
      const float scale = amax / 448.0f;  // dequantization multiplier
      sv(bi, bj) = scale;
      for (int64_t i = 0; i < blk; ++i) {
        for (int64_t j = 0; j < blk; ++j) {
          const float x = wv(bi * blk + i, bj * blk + j);
          qv(bi * blk + i, bj * blk + j) = r1::fp8_e4m3(x / scale);
          const float back = float(qv(bi * blk + i, bj * blk + j)) * scale;
          err2 += double(back - x) * (back - x);
          ref2 += double(x) * x;
        }
      }
    }
  }
  std::printf("r1 %s quickstart\n", r1::version_string);
  std::printf("fp8 e4m3 128x128 block quantization of a %lldx%lld weight: relative error %.4f\n",
              static_cast<long long>(n), static_cast<long long>(k), std::sqrt(err2 / ref2));

  if (r1::cuda_device_count() > 0) {
    r1::Tensor d = q.to(r1::Space::cuda);
    r1::Tensor back = d.to(r1::Space::host);
    std::printf("GPU round trip of %zu bytes: %s\n", back.nbytes(),
                std::memcmp(back.data(), q.data(), q.nbytes()) == 0 ? "identical" : "MISMATCH");
  } else {
    std::printf("no CUDA device visible: host only\n");
  }
  return 0;
}
