// SPDX-License-Identifier: MIT
// MTP speculative decoding on the GPU (one prompt, one draft token per step, eager), included by
// runtime/generate_cuda.hpp. The forwards run on the device; the token choices are made on the host
// from the copied F32 logits with exactly runtime/generate.hpp's rules (same Rng, same acceptance
// test), which is what makes greedy speculative decoding yield exactly the greedy ids: a token's
// logits do not depend on whether it was verified next to a draft (each row of the absorbed
// attention and of every GEMM is computed independently of the others).
#pragma once

#include "r1/core/config.hpp"

#if R1_WITH_CUDA

#include "r1/runtime/generate_cuda.hpp"

namespace r1::detail {

/// One sequence's forwards on the device for the MTP loop: the main model and the MTP module, each
/// with its own cache, inputs uploaded per forward, logits copied back.
class MtpRunner {
 public:
  MtpRunner(const CudaDeepseekV3& m, int64_t max_tokens, int64_t max_rows, int64_t page_size)
      : m_(m), ws_(stream_.get()),
        main_(m.num_layers(), m.cache_width(), 1, max_tokens, page_size, m.activation_dtype(), stream_.get()),
        mtp_(1, m.cache_width(), 1, max_tokens, page_size, m.activation_dtype(), stream_.get()),
        in_(max_rows, 1, stream_.get()) {}

  DeviceLatentCache& main_cache() { return main_; }
  DeviceLatentCache& mtp_cache() { return mtp_; }

  /// The main model over `ids` at the end of its cache. Returns host F32 logits [T, vocab]; sets
  /// `hidden` to the device final-normed states [T, hidden] (the model's activation dtype).
  Tensor main(const std::vector<int32_t>& ids, Tensor& hidden) {
    const DeviceBatch b = upload(ids, main_);
    const int64_t t = int64_t(ids.size());
    ws_.reset();
    Tensor lg = ws_.take(DType::f32, {t, m_.config().vocab_size});  // [T, vocab]
    hidden = Tensor::empty(m_.activation_dtype(), {t, m_.config().hidden_size}, Space::cuda, stream_.get());  // [T, hidden]
    m_.forward(ws_, b, main_.pages(), lg.view<float, 2>(), hidden);
    main_.set_length(0, main_.length(0) + t);
    return lg.to(Space::host, stream_.get());  // synchronizes
  }

  /// The MTP module over rows h [T, hidden] (device, activation dtype) with their next tokens; returns the
  /// greedy draft from the last row.
  int32_t draft(const Tensor& h, const std::vector<int32_t>& next) {
    const DeviceBatch b = upload(next, mtp_);
    const int64_t t = int64_t(next.size());
    ws_.reset();
    Tensor lg = ws_.take(DType::f32, {t, m_.config().vocab_size});  // [T, vocab]
    m_.mtp_forward(ws_, b, h, mtp_.pages(0), lg.view<float, 2>());
    mtp_.set_length(0, mtp_.length(0) + t);
    const Tensor last = lg.slice(0, t - 1, t).to(Space::host, stream_.get());  // [1, vocab], synchronizes
    return ref::argmax(last.view<const float, 2>().select(0, 0));
  }

 private:
  DeviceBatch upload(const std::vector<int32_t>& ids, const DeviceLatentCache& c) {
    const int64_t t = int64_t(ids.size()), start = c.length(0), v = m_.config().vocab_size;
    for (int64_t i = 0; i < t; ++i) {
      R1_CHECK(ids[size_t(i)] >= 0 && ids[size_t(i)] < v, "generate", "token id ", ids[size_t(i)],
               " is outside the model's vocabulary of ", v);
      in_.host_ids()[i] = ids[size_t(i)];
      in_.host_positions()[i] = int32_t(start + i);
      in_.host_slots()[i] = c.slot(0, start + i);
    }
    R1_CHECK(start + t <= m_.config().max_position_embeddings, "generate", "positions up to ", start + t - 1,
             " exceed max_position_embeddings = ", m_.config().max_position_embeddings);
    in_.host_seq_lens()[0] = int32_t(start + t);
    // Expanded attention for prompt-sized chunks (the host knows the start), absorbed for the
    // one- and two-token steps.
    return in_.upload(1, t, c.block_tables(), t > 2 ? start : -1);
  }

  const CudaDeepseekV3& m_;
  Stream stream_;
  Workspace ws_;
  DeviceLatentCache main_, mtp_;
  StepInputs in_;
};

inline GenerateResult generate_cuda_mtp(const CudaDeepseekV3& model, const std::vector<int32_t>& prompt,
                                        const GenerateOptions& opt) {
  R1_CHECK(!prompt.empty(), "generate", "the prompt is empty");
  const int64_t n_prompt = int64_t(prompt.size()), vocab = model.config().vocab_size;
  GenerateResult res;
  res.ids = prompt;
  res.stats.prompt_tokens = int(n_prompt);
  const int64_t max_tokens = n_prompt + opt.max_new_tokens + 1;
  MtpRunner run(model, max_tokens, std::max<int64_t>(n_prompt, 2), opt.page_size);
  ref::Rng rng(opt.seed);
  TokenSink sink(opt, res);

  auto t0 = std::chrono::steady_clock::now();
  Tensor hidden;                                  // [tokens, hidden] device, activation dtype
  const Tensor logits = run.main(prompt, hidden);  // [prompt, vocab] host F32
  res.stats.prefill_seconds = seconds_since(t0);
  if (opt.record_logits) res.prefill_logits = logits;
  t0 = std::chrono::steady_clock::now();
  if (opt.max_new_tokens == 0) {
    sink.finish(vocab);
    return res;
  }
  int32_t x = ref::sample(f32_row(logits, n_prompt - 1), opt.sampling, rng);
  bool go = sink.commit(x, f32_row(logits, n_prompt - 1));
  int32_t draft = 0;
  if (go) {
    std::vector<int32_t> next(prompt.begin() + 1, prompt.end());
    next.push_back(x);
    draft = run.draft(hidden, next);
  }
  while (go) {
    const int64_t n = run.main_cache().length(0);  // position of x
    Tensor h2;                                    // [2, hidden] device
    const Tensor l2 = run.main({x, draft}, h2);    // [2, vocab] host F32
    ++res.stats.forwards;
    ++res.stats.drafted;
    const DraftVerdict verdict = verify_draft(f32_row(l2, 0), draft, opt.sampling, rng);
    if (verdict.accepted) {
      ++res.stats.accepted;
      go = sink.commit(draft, f32_row(l2, 0));
      if (!go) break;
      x = ref::sample(f32_row(l2, 1), opt.sampling, rng);
      go = sink.commit(x, f32_row(l2, 1));
      if (!go) break;
      draft = run.draft(h2, {draft, x});
    } else {
      run.main_cache().set_length(0, n + 1);  // drop the rejected draft's row (overwritten next)
      x = verdict.token;
      go = sink.commit(x, f32_row(l2, 0));
      if (!go) break;
      draft = run.draft(h2.slice(0, 0, 1), {x});
    }
  }
  res.stats.decode_seconds = seconds_since(t0);
  sink.finish(vocab);
  return res;
}

}  // namespace r1::detail

#endif  // R1_WITH_CUDA
