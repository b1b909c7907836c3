# PyTorch peers for the r1 kernels that tools/peer_baselines.py does not cover, on DeepSeek-R1's
# shapes: what a user of PyTorch would run for each op (eager PyTorch, the fused F.* op where one
# exists). Same timing method and output format as peer_baselines.py (median of CUDA-event timings,
# rows {"name", "ms", "GB/s"/"TFLOP/s"}), written to $OUT/peers_extra.json; bench/report.py reads
# both files and each r1 benchmark row names its peer row. Runs on the GPU machine:
#   OUT=dir python3 bench/peers_extra.py
import json, math, os

import torch
import torch.nn.functional as F

dev = "cuda"
torch.manual_seed(0)
rows = []


def bench(fn, reps=50, warm=10):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


def row(name, ms, flops=None, bytes_=None):
    r = {"name": name, "ms": round(ms, 5)}
    if flops: r["TFLOP/s"] = round(flops / ms / 1e9, 2)
    if bytes_: r["GB/s"] = round(bytes_ / ms / 1e6, 1)
    rows.append(r); print(json.dumps(r), flush=True)


def section(f):
    try:
        f()
    except Exception as e:  # one failing peer must not hide the others
        print("SECTION FAILED", f.__name__, repr(e)[:400], flush=True)


H, V = 7168, 129280


@section
def fp32_gemm():
    # An fp32 reference path in PyTorch: fp32 activations times the weight upcast to fp32, TF32 off
    # (the peer of bench/linear_f32_bench.cu; the upcast weight is made once, outside the timing).
    torch.backends.cuda.matmul.allow_tf32 = False
    for n, k in [(2112, 7168), (7168, 16384), (7168, 2048), (129280, 7168)]:
        w = torch.randn(n, k, device=dev, dtype=torch.bfloat16).float()
        for m in [1, 8, 64]:
            x = torch.randn(m, k, device=dev, dtype=torch.float32)
            row(f"fp32 gemm m{m} n{n} k{k}", bench(lambda: x @ w.T), flops=2 * m * n * k,
                bytes_=4 * (m * k + n * k + m * n))
        del w
        torch.cuda.empty_cache()


@section
def add_rmsnorm():
    # The residual add + RMSNorm between sublayers (bf16 residual stream, as most PyTorch ports).
    for T in [1, 64, 4096]:
        x = torch.randn(T, H, device=dev, dtype=torch.bfloat16)
        r = torch.randn(T, H, device=dev, dtype=torch.bfloat16)
        w = torch.randn(H, device=dev, dtype=torch.bfloat16)
        def f():
            h = r + x
            return h, F.rms_norm(h, (H,), w, 1e-6)
        row(f"torch add_rmsnorm T{T} d{H}", bench(f), bytes_=T * H * 2 * 4)


@section
def rope():
    # Interleaved (adjacent-pair) rotary on q_pe [T, 128, 64] in fp32, as DeepSeek's reference code.
    for T in [1, 128, 4096]:
        x = torch.randn(T, 128, 64, device=dev, dtype=torch.bfloat16)
        pos = torch.arange(T, device=dev, dtype=torch.float32)
        inv = 1.0 / (10000 ** (torch.arange(0, 64, 2, device=dev, dtype=torch.float32) / 64))
        def f():
            ang = pos[:, None] * inv[None, :]                        # [T, 32]
            cis = torch.polar(torch.ones_like(ang), ang)[:, None, :]  # [T, 1, 32]
            xc = torch.view_as_complex(x.float().view(T, 128, 32, 2))
            return torch.view_as_real(xc * cis).flatten(2).to(torch.bfloat16)
        row(f"torch rope T{T} h128 d64", bench(f), bytes_=T * 128 * 64 * 2 * 2)


@section
def embedding():
    table = torch.randn(V, H, device=dev, dtype=torch.bfloat16)
    for T in [1, 4096]:
        ids = torch.randint(0, V, (T,), device=dev)
        row(f"torch embedding T{T}", bench(lambda: F.embedding(ids, table)), bytes_=T * H * 2 * 2)


@section
def swiglu():
    for I in [2048, 18432]:
        for R in [8, 256, 4096, 32768]:
            if R * I > 32768 * 2048 * 2:
                continue
            gu = torch.randn(R, 2 * I, device=dev, dtype=torch.bfloat16)
            def f():
                g, u = gu.chunk(2, -1)
                return F.silu(g) * u
            row(f"torch swiglu R{R} i{I}", bench(f), bytes_=R * I * 2 * 3)


@section
def act_quant():
    # DeepSeek's act_quant in PyTorch: per token per 128 channels, scale = max(amax, 1e-4) / 448.
    for K in [7168, 16384, 2048]:
        for M in [1, 128, 4096]:
            x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
            def f():
                xb = x.float().view(M, K // 128, 128)
                s = xb.abs().amax(-1, keepdim=True).clamp(min=1e-4) / 448.0
                return (xb / s).to(torch.float8_e4m3fn).view(M, K), s.squeeze(-1)
            row(f"torch act_quant m{M} k{K}", bench(f), bytes_=M * K * 3 + M * K // 32)


@section
def router():
    # DeepSeek-V3's noaux_tc gate as Hugging Face's DeepseekV3TopkRouter computes it.
    E, G, TG, K = 256, 8, 4, 8
    bias = torch.randn(E, device=dev)
    for T in [1, 16, 256, 4096]:
        logits = torch.randn(T, E, device=dev)
        def f():
            s = logits.sigmoid()
            sel = s + bias
            gs = sel.view(T, G, -1).topk(2, dim=-1)[0].sum(-1)
            gidx = gs.topk(TG, dim=-1, sorted=False)[1]
            gmask = torch.zeros_like(gs).scatter_(1, gidx, 1)
            smask = gmask.unsqueeze(-1).expand(T, G, E // G).reshape(T, E)
            sel = sel.masked_fill(~smask.bool(), float("-inf"))
            idx = sel.topk(K, dim=-1, sorted=False)[1]
            w = s.gather(1, idx)
            return idx, w / (w.sum(-1, keepdim=True) + 1e-20) * 2.5
        row(f"torch router T{T}", bench(f), bytes_=T * E * 4)


@section
def moe_dispatch():
    # Permute tokens by expert, gather their rows, and the weighted combine back (no expert GEMMs).
    E, K = 256, 8
    for T in [1, 16, 256, 4096]:
        x = torch.randn(T, H, device=dev, dtype=torch.bfloat16)
        idx = torch.randint(0, E, (T, K), device=dev)
        w = torch.rand(T, K, device=dev)
        def f():
            flat = idx.flatten()
            order = flat.argsort(stable=True)
            counts = torch.bincount(flat, minlength=E)
            xe = x.index_select(0, order // K)
            y = torch.empty_like(xe); y[order] = xe
            return counts, (y.view(T, K, H).float() * w[..., None]).sum(1).to(torch.bfloat16)
        row(f"torch moe dispatch+combine T{T}", bench(f), bytes_=T * K * H * 2 * 3 + T * H * 2 * 2)


@section
def mla_prefill():
    # Expanded MLA prefill attention, causal, 128 heads, qk 192 (128 nope + 64 rope), v 128.
    for T in [1024, 4096]:
        q = torch.randn(1, 128, T, 192, device=dev, dtype=torch.bfloat16)
        k = torch.randn(1, 128, T, 192, device=dev, dtype=torch.bfloat16)
        v = torch.randn(1, 128, T, 128, device=dev, dtype=torch.bfloat16)
        f = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1 / math.sqrt(192))
        flops = 128 * (T * (T + 1) / 2) * 2 * (192 + 128)
        row(f"torch SDPA MLA prefill T{T}", bench(f, reps=20), flops=flops)


@section
def mla_decode_more():
    # The absorbed decode of peer_baselines.py at the batch sizes it leaves out.
    h, dl, dr = 128, 512, 64
    for (b, s) in [(16, 4096), (128, 4096), (256, 4096), (1, 32768)]:
        q = torch.randn(b, h, dl + dr, device=dev, dtype=torch.bfloat16)
        kv = torch.randn(b, s, dl + dr, device=dev, dtype=torch.bfloat16)
        scale = 1 / math.sqrt(192)
        def f():
            sc = torch.einsum("bhd,bsd->bhs", q, kv).float() * scale
            p = sc.softmax(-1).to(torch.bfloat16)
            return torch.einsum("bhs,bsd->bhd", p, kv[..., :dl])
        flops = b * h * s * (2 * (dl + dr) + 2 * dl)
        row(f"torch MLA decode b{b} s{s}", bench(f), flops=flops, bytes_=b * s * (dl + dr) * 2)


@section
def sampling():
    for B in [1, 64, 256]:
        logits = torch.randn(B, V, device=dev)
        row(f"torch sampling greedy B{B}", bench(lambda: logits.argmax(-1)), bytes_=B * V * 4)
        def f():
            p = (logits / 0.6).softmax(-1)
            ps, pi = p.sort(-1, descending=True)
            cs = ps.cumsum(-1)
            ps = ps.masked_fill(cs - ps > 0.95, 0.0)
            pick = torch.multinomial(ps, 1)
            return pi.gather(-1, pick)
        row(f"torch sampling top-p B{B}", bench(f), bytes_=B * V * 4)


print("TABLE")
for r in rows:
    print(json.dumps(r))
json.dump(rows, open(os.path.join(os.environ.get("OUT", "/tmp"), "peers_extra.json"), "w"), indent=1)
