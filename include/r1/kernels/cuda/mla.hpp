// SPDX-License-Identifier: MIT
// Multi-head latent attention on the GPU, twins of ref/mla.hpp (host-callable declarations;
// definitions in mla_prefill.cuh, mla_decode.cuh and mla.cuh, instantiated in
// src/cuda/mla{_prefill,_decode,}.cu). Same names, same parameter order as the ref twins plus a
// trailing stream; fp32 scores, softmax and sums. T is bf16 (r1's GPU activations) or float (the
// precise policy: every activation, the paged latent cache and the dequantized kv_b weight in f32).
//
// bf16:
//  - mla_attention_expanded: prefill, flash-attention style (64 queries x 64 keys per step in shared
//    memory, mma.sync m16n8k16 tensor cores, online softmax); never materializes [T, S].
//  - mla_attention_absorbed: decode over the paged latent cache (FlashMLA's problem), batched with
//    per-sequence lengths in device memory (graph-capturable), split over the keys
//    (flash-decoding) with a combine kernel; one block computes 64 (token, head) rows per key tile,
//    all of them sharing the latent rows it loads.
//  - mla_absorb_q / mla_v_up: the per-head GEMMs around it (cuBLASLt strided-batched bf16; a plain
//    kernel where cuBLASLt has no algorithm for the strides).
// Head dimensions: tensor-core kernels are compiled for R1's (dn + dr <= 192, dv <= 128; kv_lora
// <= 512, dr <= 64) and small fixtures' (dn + dr <= 96, dv <= 64; kv_lora <= 128, dr <= 32) dims,
// with smaller dims zero-padded; any other dims run a slower warp-per-row kernel.
//
// float: correctness first (tiny models), never tensor cores or cuBLASLt, nothing rounded below
// f32: every dims run the warp-per-row kernels (one warp per (token, head) row, keys one at a time
// with an online softmax, the decode one unsplit) and the plain per-head GEMM kernel, all with fp32
// loads and math and f32 outputs. Same semantics as bf16 (causal mask, device-side lengths, zeros
// for rows without keys, NaN for bad pages, graph-capturable).
// The warp-per-row kernels (both dtypes) take any head dims whose fp32 staging of 4 rows per block,
// 16 bytes x (dn + dr + dv) for prefill and x (2 kv_lora + dr) for decode, fits the device's shared
// memory (R1's dims: 5 KB and 17 KB); larger dims are an error naming them.
#pragma once

#include <cstdint>

#include "r1/core/cuda.hpp"
#include "r1/core/dtype.hpp"
#include "r1/tensor/view.hpp"

namespace r1::cuda {

/// Expanded causal MLA attention (ref::mla_attention_expanded): query t at position q_start + t
/// sees keys 0 .. q_start + t. All views unit-stride in their last dimension; rows and heads may
/// have any strides (q_nope / q_pe can be slices of one [T, H, dn + dr] tensor, k_nope / v of one
/// [S, H, dn + dv] kv_b output).
/// @param q_nope [tokens, heads, nope_dim]
/// @param q_pe   [tokens, heads, rope_dim] after RoPE
/// @param k_nope [keys, heads, nope_dim]
/// @param k_pe   [keys, rope_dim] after RoPE, shared by all heads
/// @param v      [keys, heads, v_dim]
/// @param out    [tokens, heads, v_dim]
template <class T>
void mla_attention_expanded(View<const T, 3> q_nope, View<const T, 3> q_pe, View<const T, 3> k_nope,
                            View<const T, 2> k_pe, View<const T, 3> v, double scale, int64_t q_start,
                            View<T, 3> out, stream_t stream);

/// q_lat[t, h, :] = W_UK[h]^T q_nope[t, h, :] (ref::mla_absorb_q).
/// @param q_nope [tokens, heads, nope_dim]
/// @param w_kvb  [heads * (nope_dim + v_dim), kv_lora_rank] kv_b_proj weight, dequantized to T
/// @param q_lat  [tokens, heads, kv_lora_rank]
template <class T>
void mla_absorb_q(View<const T, 3> q_nope, View<const T, 2> w_kvb, int v_dim, View<T, 3> q_lat, stream_t stream);

/// Batched absorbed causal MLA attention over the paged latent cache (the CUDA form of
/// ref::mla_attention_absorbed). Sequence b has seq_lens[b] cached keys, the last `tokens` of
/// which are its queries: query t sits at position seq_lens[b] - tokens + t and sees keys
/// 0 .. seq_lens[b] - tokens + t. Lengths and block tables are read on the device only, so the call
/// can be captured in a CUDA graph and replayed with new lengths; the split of the keys over
/// blocks is sized from the block table width (max_blocks * page_size keys at most). On the
/// device, a length is clamped to [0, max_blocks * page]; rows that see no key (their position
/// seq_lens[b] - tokens + t is negative, e.g. padding sequences with length 0) get zeros; a key on
/// a page index outside [0, num_pages) makes the rows that see it NaN.
/// @param q_lat        [batch, tokens, heads, kv_lora_rank] from mla_absorb_q
/// @param q_pe         [batch, tokens, heads, rope_dim] after RoPE
/// @param pages        [num_pages, page_size, kv_lora_rank + rope_dim] rows [c_kv || k_pe]
/// @param block_tables [batch, max_blocks] int32 on the device
/// @param seq_lens     [batch] int32 on the device
/// @param o_lat        [batch, tokens, heads, kv_lora_rank]
template <class T>
void mla_attention_absorbed(View<const T, 4> q_lat, View<const T, 4> q_pe, View<const T, 3> pages,
                            View<const int32_t, 2> block_tables, View<const int32_t, 1> seq_lens, double scale,
                            View<T, 4> o_lat, stream_t stream);

/// Single sequence, the ref twin's signature (keys and q_start are host values; the block table is
/// on the device): query t sits at position q_start + t and sees keys 0 .. q_start + t.
/// @param q_lat       [tokens, heads, kv_lora_rank]
/// @param q_pe        [tokens, heads, rope_dim]
/// @param pages       [num_pages, page_size, kv_lora_rank + rope_dim]
/// @param block_table [max_blocks] int32 on the device, at least ceil(keys / page_size) entries
/// @param o_lat       [tokens, heads, kv_lora_rank]
template <class T>
void mla_attention_absorbed(View<const T, 3> q_lat, View<const T, 3> q_pe, View<const T, 3> pages,
                            View<const int32_t, 1> block_table, int64_t keys, double scale, int64_t q_start,
                            View<T, 3> o_lat, stream_t stream);

/// out[t, h, :] = W_UV[h] o_lat[t, h, :] (ref::mla_v_up).
/// @param o_lat [tokens, heads, kv_lora_rank]
/// @param w_kvb [heads * (nope_dim + v_dim), kv_lora_rank]
/// @param out   [tokens, heads, v_dim]
template <class T>
void mla_v_up(View<const T, 3> o_lat, View<const T, 2> w_kvb, int nope_dim, View<T, 3> out, stream_t stream);

}  // namespace r1::cuda
