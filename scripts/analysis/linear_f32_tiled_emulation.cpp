// SPDX-License-Identifier: MIT
// Build and run: g++ -O2 -std=c++20 scripts/analysis/linear_f32_tiled_emulation.cpp -o /tmp/emu && /tmp/emu
// Host emulation of linear_f32_tiled_kernel's index math (element-load path), dense + split-K +
// grouped, f32 weights (dequant/native modes by flags; the kernel itself no longer takes the native
// form, which stays on the warp kernel), against a naive reference.
#include <cstdio>
#include <cmath>
#include <vector>
#include <algorithm>
#include <random>
constexpr int BM = 64, BN = 128, BK = 32, TH = 256;
// a thread's 8 columns: 4 tx .. 4 tx + 3 and 64 + 4 tx .. 64 + 4 tx + 3
inline int col_of(int tx, int j) { return j < 4 ? 4 * tx + j : BN / 2 + 4 * tx + j - 4; }
struct Prob { int m, n, k; bool native; bool dequant; int groups; std::vector<int> off; };
int main() {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> U(-1, 1);
  int fails = 0;
  std::vector<Prob> probs = {
    {129, 300, 384, false, false, 1, {}}, {127, 7, 129, false, true, 1, {}}, {33, 200, 2048, true, false, 1, {}},
    {16, 129, 1100, false, false, 1, {}}, {300, 129, 384, true, false, 8, {0, 10, 10, 100, 90, 200, 250, 280, 290}},
    {129, 300, 129, false, true, 8, {5, 20, 40, 40, 60, 100, 120, 128, 129}}, {200, 1, 5, false, false, 1, {}}};
  for (auto& P : probs) {
    const int m = P.m, n = P.n, k = P.k, kbt = (k + 127) / 128, nb = (n + 127) / 128;
    std::vector<float> x(size_t(m) * k), w(size_t(P.groups) * n * k), xs(size_t(m) * kbt), ws(size_t(P.groups) * nb * kbt);
    for (auto& v : x) v = U(rng); for (auto& v : w) v = U(rng);
    for (auto& v : xs) v = 0.5f + U(rng) * 0.25f; for (auto& v : ws) v = 0.5f + U(rng) * 0.25f;
    // ownership (running max, clamped)
    std::vector<int> owner(m, -1);
    std::vector<int> off = P.groups == 1 ? std::vector<int>{0, m} : P.off;
    { int lo = std::min(std::max(off[0], 0), m);
      for (int g = 0; g < P.groups; ++g) { int hi = std::max(lo, std::min(std::max(off[g + 1], 0), m)); for (int r = lo; r < hi; ++r) owner[r] = g; lo = hi; } }
    // reference
    std::vector<double> ref(size_t(m) * n, 0);
    for (int r = 0; r < m; ++r) { int e = owner[r]; if (e < 0) continue;
      for (int c = 0; c < n; ++c) { double acc = 0;
        for (int kb = 0; kb < kbt; ++kb) { double part = 0;
          for (int kk = kb * 128; kk < std::min(k, kb * 128 + 128); ++kk) {
            double wv = w[(size_t(e) * n + c) * k + kk];
            if (P.dequant) wv = float(wv * ws[(size_t(e) * nb + c / 128) * kbt + kb]);
            part += double(x[size_t(r) * k + kk]) * wv; }
          acc += P.native ? part * double(float(xs[size_t(r) * kbt + kb] * ws[(size_t(e) * nb + c / 128) * kbt + kb])) : part; }
        ref[size_t(r) * n + c] = acc; } }
    // emulation
    const bool grouped = P.groups > 1;
    const long row_tiles = grouped ? (m + BM - 1) / BM + P.groups : (m + BM - 1) / BM;
    const int n_tiles = (n + BN - 1) / BN;
    const long tiles = row_tiles * n_tiles;
    const int want = grouped ? 1 : int((2 * 132 + tiles - 1) / tiles);
    const int splits = std::clamp(want, 1, std::max(1, kbt / 4));
    const int kbps = std::max(1, (kbt + splits - 1) / splits), used = std::max(1, (kbt + kbps - 1) / kbps);
    std::vector<float> y(size_t(m) * n, NAN), partial(size_t(used) * m * n, NAN);
    for (long bx = 0; bx < tiles; ++bx) for (int by = 0; by < used; ++by) {
      const int n0 = int(bx % n_tiles) * BN;
      int m0 = int(bx / n_tiles) * BM, m_end = std::min(m, m0 + BM), e = 0;
      if (grouped) { std::vector<int> o(P.groups + 1); for (int i = 0; i <= P.groups; ++i) o[i] = std::min(std::max(off[i], 0), m);
        int slot = int(bx / n_tiles); e = -1;
        for (int g = 0, lo = o[0]; g < P.groups; ++g) { int hi = std::max(lo, o[g + 1]); int t = (hi - lo + BM - 1) / BM;
          if (slot < t) { e = g; m0 = lo + slot * BM; m_end = std::min(hi, m0 + BM); break; } slot -= t; lo = hi; }
        if (e < 0) continue; }
      const int kb_lo = by * kbps, kb_hi = std::min(kbt, kb_lo + kbps), k_lo = kb_lo * 128, k_hi = std::min(k, kb_hi * 128);
      const int steps = (k_hi - k_lo + BK - 1) / BK;
      static float sx[2][BK][BM], sw[2][BK][BN];
      static float acc[TH][4][8], blk[TH][4][8], xr[TH][8], wr[TH][16];
      for (int t = 0; t < TH; ++t) for (int i = 0; i < 4; ++i) for (int j = 0; j < 8; ++j) acc[t][i][j] = blk[t][i][j] = 0;
      auto load = [&](int step) { const int kk0 = k_lo + step * BK;
        for (int t = 0; t < TH; ++t) { int lr = t % BM, lkx = t / BM * 8, lc = t % BN, lkw = t / BN * 16;
          bool xin = m0 + lr < m_end, win = n0 + lc < n;
          for (int j = 0; j < 8; ++j) { int kk = kk0 + lkx + j; xr[t][j] = (xin && kk < k_hi) ? x[size_t(m0 + lr) * k + kk] : 0; }
          int col = std::min(n0 + lc, n - 1);
          for (int j = 0; j < 16; ++j) { int kk = kk0 + lkw + j; float v = (win && kk < k_hi) ? w[(size_t(e) * n + col) * k + kk] : 0;
            if (P.dequant) v = v * ws[(size_t(e) * nb + n0 / 128) * kbt + kk0 / 128];
            wr[t][j] = v; } } };
      auto store = [&](int buf) { for (int t = 0; t < TH; ++t) { int lr = t % BM, lkx = t / BM * 8, lc = t % BN, lkw = t / BN * 16;
          for (int j = 0; j < 8; ++j) sx[buf][lkx + j][lr] = xr[t][j]; for (int j = 0; j < 16; ++j) sw[buf][lkw + j][lc] = wr[t][j]; } };
      auto fold = [&](int kb) { for (int t = 0; t < TH; ++t) { int ty = t / 16;
          for (int i = 0; i < 4; ++i) { int r = std::min(m0 + 4 * ty + i, m_end - 1);
            float s = P.native ? xs[size_t(r) * kbt + kb] * ws[(size_t(e) * nb + n0 / 128) * kbt + kb] : 1.0f;
            for (int j = 0; j < 8; ++j) { acc[t][i][j] = P.native ? std::fma(blk[t][i][j], s, acc[t][i][j]) : acc[t][i][j] + blk[t][i][j]; blk[t][i][j] = 0; } } } };
      if (steps > 0) { load(0); store(0); }
      for (int step = 0; step < steps; ++step) { int buf = step & 1;
        if (step + 1 < steps) load(step + 1);
        for (int t = 0; t < TH; ++t) { int ty = t / 16, tx = t % 16;
          for (int kk = 0; kk < BK; ++kk) for (int i = 0; i < 4; ++i) for (int j = 0; j < 8; ++j)
            blk[t][i][j] = std::fma(sx[buf][kk][4 * ty + i], sw[buf][kk][col_of(tx, j)], blk[t][i][j]); }
        int k_next = k_lo + (step + 1) * BK;
        if (k_next % 128 == 0 || step + 1 == steps) fold((k_next - 1) / 128);
        if (step + 1 < steps) store(buf ^ 1); }
      for (int t = 0; t < TH; ++t) { int ty = t / 16, tx = t % 16;
        for (int i = 0; i < 4; ++i) { int r = m0 + 4 * ty + i; if (r >= m_end) continue;
          for (int j = 0; j < 8; ++j) { int c = n0 + col_of(tx, j); if (c >= n) continue;
            if (used > 1) partial[size_t(by) * m * n + size_t(r) * n + c] = acc[t][i][j]; else y[size_t(r) * n + c] = acc[t][i][j]; } } }
    }
    if (used > 1) for (size_t i = 0; i < size_t(m) * n; ++i) { float s = 0; bool any = false; for (int sp = 0; sp < used; ++sp) { float v = partial[sp * size_t(m) * n + i]; if (!std::isnan(v)) { s += v; any = true; } } if (any) y[i] = s; }
    double maxerr = 0; long bad = 0, touched_unowned = 0;
    for (int r = 0; r < m; ++r) for (int c = 0; c < n; ++c) { float v = y[size_t(r) * n + c];
      if (owner[r] < 0) { if (!std::isnan(v)) ++touched_unowned; continue; }
      if (std::isnan(v)) { ++bad; continue; }
      maxerr = std::max(maxerr, std::fabs(v - ref[size_t(r) * n + c]) / (1e-30 + std::sqrt(double(k)))); }
    printf("m=%d n=%d k=%d native=%d dequant=%d groups=%d splits=%d: unwritten %ld, unowned written %ld, max err/sqrt(k) %.2e\n",
           m, n, k, P.native, P.dequant, P.groups, used, bad, touched_unowned, maxerr);
    if (bad || touched_unowned || maxerr > 1e-5) ++fails;
  }
  printf(fails ? "FAIL\n" : "ok\n");
  return fails;
}
