// A user's program: includes the umbrella header and uses the tensor layer on the host.
#include <r1/r1.hpp>

#include <cstdio>

int main() {
  r1::Tensor t = r1::Tensor::zeros(r1::DType::bf16, {2, 3});  // [2, 3]
  auto v = t.view<r1::bf16, 2>();
  v(1, 2) = r1::bf16(1.5f);
  const float back = float(t.view<const r1::bf16, 2>()(1, 2));
  const r1::fp8_e4m3 q(300.0f);
  std::printf("r1 %s: bf16 %.2f, e4m3(300) = %.1f, CUDA devices %d\n", r1::version_string, back,
              float(q), r1::cuda_device_count());
  return back == 1.5f && float(q) == 288.0f ? 0 : 1;
}
