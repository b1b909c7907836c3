// SPDX-License-Identifier: MIT
// Generation on top of a model (DeepseekV3<Q>, AnyDeepseekV3, or anything with the same forward /
// mtp_forward / config / num_layers / cache_width): prefill, then one token per step from the
// latent cache, choosing each token greedily or by seeded sampling (kernels/ref/sampling.hpp).
//
// With `mtp`, decoding is speculative with one draft token from the MTP module (r1-spec §8.2):
// each step verifies [x_n, draft] in one forward, accepts the draft if it is what the main model
// chooses at x_n, and otherwise rolls the main cache back by one token. Greedy speculative decoding
// yields exactly the plain greedy sequence (a token's logits do not depend on whether it was
// verified alongside a draft: see layers/mla.hpp). With temperature > 0 the draft is accepted with
// probability p(draft) and a rejection resamples from p without the draft, which leaves the output
// distribution exactly the target's (speculative sampling with a greedy draft).
#pragma once

#include <chrono>
#include <cstring>
#include <functional>
#include <vector>

#include "r1/kernels/ref/sampling.hpp"
#include "r1/layers/exec.hpp"
#include "r1/runtime/kv_cache.hpp"

namespace r1 {

struct GenerateOptions {
  int max_new_tokens = 16;
  ref::SamplingParams sampling;  ///< temperature 0: greedy
  uint64_t seed = 0;
  std::vector<int32_t> stop_ids;  ///< stop after emitting one of these (e.g. EOS); empty: never
  bool mtp = false;               ///< speculative decoding with the MTP module
  bool record_logits = false;     ///< keep prefill_logits and step_logits
  int64_t page_size = 64;         ///< latent cache page size
  std::function<void(int32_t)> on_token;  ///< called for each new token as it is committed
};

struct GenerateStats {
  int prompt_tokens = 0;
  int new_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;
  int forwards = 0;  ///< decode forwards of the main model (speculative: verify steps)
  int drafted = 0;   ///< MTP drafts verified
  int accepted = 0;  ///< drafts accepted
  double acceptance_rate() const { return drafted ? double(accepted) / drafted : 0.0; }
};

struct GenerateResult {
  std::vector<int32_t> ids;  ///< prompt then new tokens
  Tensor prefill_logits;     ///< [prompt, vocab] F32 (record_logits)
  Tensor step_logits;        ///< [new, vocab] F32: the logits each new token was chosen from
  GenerateStats stats;
};

namespace detail {
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
/// Row r of a [rows, n] logits tensor (host activations) as a view.
inline View<const host_act_t, 1> row_view(const Tensor& t, int64_t r) {
  return t.view<const host_act_t, 2>().select(0, r);
}
/// An F32 copy of host logits (what r1 reports and dumps).
inline Tensor to_f32_tensor(const Tensor& t) {
  Tensor out = Tensor::empty(DType::f32, t.shape());  // [rows, vocab]
  const Tensor c = t.contiguous();                    // [rows, vocab]
  for (int64_t i = 0; i < t.numel(); ++i) out.data_as<float>()[i] = float(c.data_as<host_act_t>()[i]);
  return out;
}

/// Collects the committed tokens and the logits rows they were chosen from (host and GPU loops;
/// it holds pointers, so sinks of a batch can live in a vector).
class TokenSink {
 public:
  TokenSink(const GenerateOptions& o, GenerateResult& r) : o_(&o), r_(&r) {}
  /// Commits `id` chosen from `logits` [vocab] (read only when recording logits); returns false
  /// once generation must stop.
  template <class T>
  bool commit(int32_t id, View<const T, 1> logits) {
    r_->ids.push_back(id);
    ++r_->stats.new_tokens;
    if (o_->record_logits) {
      for (int64_t i = 0; i < logits.shape[0]; ++i) rows_.push_back(float(logits(i)));
    }
    if (o_->on_token) o_->on_token(id);
    for (int32_t s : o_->stop_ids) stopped_ = stopped_ || s == id;
    return !done();
  }
  bool done() const { return stopped_ || r_->stats.new_tokens >= o_->max_new_tokens; }
  void finish(int64_t vocab) {
    if (!o_->record_logits) return;
    r_->step_logits = Tensor::empty(DType::f32, {r_->stats.new_tokens, vocab});  // [new tokens, vocab]
    if (!rows_.empty()) std::memcpy(r_->step_logits.data(), rows_.data(), rows_.size() * sizeof(float));
  }

 private:
  const GenerateOptions* o_;
  GenerateResult* r_;
  std::vector<float> rows_;
  bool stopped_ = false;
};

/// The verdict of speculative verification on a draft token.
struct DraftVerdict {
  bool accepted = false;
  int32_t token = 0;  ///< the draft when accepted, else the token that replaces it
};

/// Verifies `draft` against the main model's logits at its position [vocab] (Leviathan et al.):
/// greedy accepts exactly when the draft is the argmax; sampling accepts with the draft's
/// probability p(draft) (the MTP draft is greedy, so its own probability is 1) and otherwise
/// resamples from p without the draft. Shared by the host and GPU loops, so both make the same
/// decisions from the same logits and random stream.
template <class T>
DraftVerdict verify_draft(View<const T, 1> logits, int32_t draft, const ref::SamplingParams& sp, ref::Rng& rng) {
  DraftVerdict v;
  v.token = draft;
  if (sp.temperature <= 0) {
    v.token = ref::argmax(logits);
    v.accepted = v.token == draft;
    return v;
  }
  const ref::TokenDistribution p = ref::sampling_distribution(logits, sp);
  double pd = 0;
  for (const auto& [id, prob] : p) pd += id == draft ? prob : 0.0;
  v.accepted = rng.uniform() < pd;
  if (!v.accepted) {  // resample from p without the draft
    ref::TokenDistribution rest;
    for (const auto& e : p)
      if (e.first != draft) rest.push_back({e.first, e.second / (1 - pd)});
    v.token = ref::sample_from(rest, rng);
  }
  return v;
}
}  // namespace detail

template <class Model>
GenerateResult generate(const Model& model, const std::vector<int32_t>& prompt, const GenerateOptions& opt,
                        const Exec& ex = {}) {
  ref::validate(opt.sampling);
  R1_CHECK(!prompt.empty(), "generate", "the prompt is empty");
  R1_CHECK(opt.max_new_tokens >= 0, "generate", "max_new_tokens ", opt.max_new_tokens, " is negative");
  R1_CHECK(!opt.mtp || model.has_mtp(), "generate", "MTP speculative decoding needs the MTP module (load it)");
  const int64_t n_prompt = int64_t(prompt.size()), vocab = model.config().vocab_size;
  GenerateResult res;
  res.ids = prompt;
  res.stats.prompt_tokens = int(n_prompt);
  // One extra slot: a speculative step caches a draft beyond the last committed token.
  const int64_t max_tokens = n_prompt + opt.max_new_tokens + 1;
  LatentKvCache cache(model.num_layers(), model.cache_width(), max_tokens, opt.page_size, ex.space);
  ref::Rng rng(opt.seed);
  detail::TokenSink sink(opt, res);

  auto t0 = std::chrono::steady_clock::now();
  const auto prompt_view = make_view<1>(prompt.data(), {n_prompt});
  Tensor hidden;  // [tokens, hidden] final-normed states of the last forward (MTP input)
  Tensor logits = model.forward(ex, prompt_view, 0, cache.prepare(n_prompt), opt.mtp ? &hidden : nullptr);  // [prompt, vocab]
  cache.commit(n_prompt);
  res.stats.prefill_seconds = detail::seconds_since(t0);
  if (opt.record_logits) res.prefill_logits = detail::to_f32_tensor(logits);
  t0 = std::chrono::steady_clock::now();
  if (opt.max_new_tokens == 0) {
    sink.finish(vocab);
    return res;
  }

  if (!opt.mtp) {
    Tensor last = logits.slice(0, n_prompt - 1, n_prompt);  // [1, vocab]
    while (true) {
      const int32_t id = ref::sample(detail::row_view(last, 0), opt.sampling, rng);
      if (!sink.commit(id, detail::row_view(last, 0))) break;
      const int64_t pos = cache.length();
      last = model.forward(ex, make_view<1>(&id, {1}), pos, cache.prepare(1));
      cache.commit(1);
      ++res.stats.forwards;
    }
  } else {
    LatentKvCache mtp_cache(1, model.cache_width(), max_tokens, opt.page_size, ex.space);
    // Bootstrap (r1-spec §8.2): x_n from the prompt's last logits, then the MTP module over the
    // pairs (h_i, x_{i+1}), i < n, and the draft from its last row.
    int32_t x = ref::sample(detail::row_view(logits, n_prompt - 1), opt.sampling, rng);
    bool go = sink.commit(x, detail::row_view(logits, n_prompt - 1));
    auto run_mtp = [&](const Tensor& h, const std::vector<int32_t>& next) {
      const int64_t t = h.size(0), pos = mtp_cache.length();
      Tensor d = model.mtp_forward(ex, h, make_view<1>(next.data(), {t}), pos, mtp_cache.prepare(t)[0]);  // [t, vocab]
      mtp_cache.commit(t);
      return ref::argmax(detail::row_view(d, t - 1));  // the draft is greedy
    };
    int32_t draft = 0;
    if (go) {
      std::vector<int32_t> next(prompt.begin() + 1, prompt.end());
      next.push_back(x);
      draft = run_mtp(hidden, next);
    }
    while (go) {
      const int64_t n = cache.length();  // position of x
      const int32_t pair[2] = {x, draft};
      Tensor h2;  // [2, hidden] final-normed states of x and the draft
      Tensor l2 = model.forward(ex, make_view<1>(pair, {2}), n, cache.prepare(2), &h2);  // [2, vocab]
      cache.commit(2);
      ++res.stats.forwards;
      ++res.stats.drafted;
      const detail::DraftVerdict verdict = detail::verify_draft(detail::row_view(l2, 0), draft, opt.sampling, rng);
      if (verdict.accepted) {
        ++res.stats.accepted;
        go = sink.commit(draft, detail::row_view(l2, 0));
        if (!go) break;
        x = ref::sample(detail::row_view(l2, 1), opt.sampling, rng);
        go = sink.commit(x, detail::row_view(l2, 1));
        if (!go) break;
        draft = run_mtp(h2, {draft, x});
      } else {
        cache.truncate(n + 1);  // drop the rejected draft's cache row
        x = verdict.token;
        go = sink.commit(x, detail::row_view(l2, 0));
        if (!go) break;
        draft = run_mtp(h2.slice(0, 0, 1), {x});
      }
    }
  }
  res.stats.decode_seconds = detail::seconds_since(t0);
  sink.finish(vocab);
  return res;
}

}  // namespace r1
