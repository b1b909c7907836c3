// SPDX-License-Identifier: MIT
// Instantiations of r1::cuda::route_experts: DeepSeek-V3/R1 (sigmoid, group-limited top-2-sum),
// V2 (softmax, group-limited max) and V2-Lite (softmax, greedy); Sigmoid x Greedy for small MoEs.
#include "r1/kernels/cuda/router.cuh"

namespace r1::cuda {
#define R1_ROUTER_INSTANTIATE(S, L)                                                                       \
  template void route_experts<S, L>(View<const float, 2>, View<const float, 1>, const route::RouterConfig&, \
                                    View<int32_t, 2>, View<float, 2>, stream_t, int32_t*);
R1_ROUTER_INSTANTIATE(route::Sigmoid, route::GroupLimited<route::Top2Sum>)
R1_ROUTER_INSTANTIATE(route::Sigmoid, route::GroupLimited<route::GroupMax>)
R1_ROUTER_INSTANTIATE(route::Sigmoid, route::Greedy)
R1_ROUTER_INSTANTIATE(route::Softmax, route::GroupLimited<route::Top2Sum>)
R1_ROUTER_INSTANTIATE(route::Softmax, route::GroupLimited<route::GroupMax>)
R1_ROUTER_INSTANTIATE(route::Softmax, route::Greedy)
#undef R1_ROUTER_INSTANTIATE
}  // namespace r1::cuda
