// SPDX-License-Identifier: MIT
// Generation with the CUDA model (models/deepseek_v3_cuda.hpp): prefill, then decode with the
// paged latent cache on the device, for a batch of prompts, greedy or sampled, and MTP speculative
// decoding with one draft token.
//
// CudaDecoder is the loop's engine: prefill(b, prompt) fills sequence b's cache and chooses its
// first token; step() decodes one token for every sequence of the batch. The decode step is
// captured ONCE in a CUDA graph and replayed: the graph reads the token ids, positions, slots and
// lengths from device buffers (StepInputs) and its sampler writes the next ids into the same ids
// buffer, so per step the host only copies the new positions/slots/lengths in, launches the graph
// and copies the chosen ids out (it needs them for streaming and stop tokens). The first step runs
// eagerly (cuBLASLt picks its algorithms and the workspace reaches its size), the second is
// captured. If capture or instantiation fails, decoding continues eagerly and graph_note() says why.
//
// Token choice runs on the device (runtime/sampling_cuda.hpp: argmax, or seeded sampling with a
// device step counter so replays draw new numbers). MTP speculative decoding (batch 1, eager) chooses
// on the host from the copied logits with exactly the host loop's rules (runtime/generate.hpp), so
// greedy MTP yields exactly the greedy sequence.
#pragma once

#include "r1/core/config.hpp"

#if R1_WITH_CUDA

#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "r1/models/deepseek_v3_cuda.hpp"
#include "r1/runtime/generate.hpp"
#include "r1/runtime/kv_cache_cuda.hpp"
#include "r1/runtime/sampling_cuda.hpp"

namespace r1 {

namespace detail {
/// Row r [vocab] of a host F32 [rows, vocab] tensor, or an empty view when the tensor is undefined
/// (logits are only copied to the host when they are recorded; TokenSink reads them only then).
inline View<const float, 1> f32_row(const Tensor& t, int64_t r) {
  return t.defined() ? t.view<const float, 2>().select(0, r) : View<const float, 1>{};
}
}  // namespace detail

struct CudaRunOptions {
  bool graph = true;  ///< capture the decode step in a CUDA graph (else every step is eager)
};

class CudaDecoder {
 public:
  /// @param batch      sequences decoded together
  /// @param max_tokens capacity of each sequence (prompt + new tokens + 1 for a speculative draft)
  /// @param max_prompt longest prompt that prefill() takes
  CudaDecoder(const CudaDeepseekV3& model, int64_t batch, int64_t max_tokens, int64_t max_prompt,
              const GenerateOptions& opt, const CudaRunOptions& run = {})
      : model_(model), opt_(opt), run_(run), batch_(batch), ws_(stream_.get()),
        cache_(model.num_layers(), model.cache_width(), batch, max_tokens, opt.page_size, model.activation_dtype(),
               stream_.get()),
        prefill_in_(max_prompt, 1, stream_.get()), decode_in_(2 * batch, batch, stream_.get()),
        sampler_(opt.sampling, opt.seed, stream_.get()), ids_(size_t(batch), 0) {
    ref::validate(opt.sampling);
    R1_CHECK(batch > 0 && max_prompt > 0, "generate", "batch ", batch, " and max_prompt ", max_prompt,
             " must be positive");
    host_out_ = std::shared_ptr<int32_t>(static_cast<int32_t*>(pinned_alloc(size_t(batch) * 4)), pinned_free);
  }
  ~CudaDecoder() {
    if (exec_) (void)cudaGraphExecDestroy(exec_);
    if (graph_) (void)cudaGraphDestroy(graph_);
  }
  CudaDecoder(const CudaDecoder&) = delete;
  CudaDecoder& operator=(const CudaDecoder&) = delete;

  stream_t stream() const { return stream_.get(); }
  const DeviceLatentCache& cache() const { return cache_; }
  bool graph_used() const { return exec_ != nullptr; }
  const std::string& graph_note() const { return note_; }
  /// The last chosen token of each sequence.
  const std::vector<int32_t>& last_ids() const { return ids_; }

  /// Prefills sequence b (which must be empty) and chooses its first token.
  /// @param logits if set, receives the prompt's logits, host F32 [prompt, vocab]
  /// @param hidden if set, receives the final-normed states, device [prompt, hidden] in the
  ///               model's activation dtype (MTP)
  int32_t prefill(int64_t b, const std::vector<int32_t>& prompt, Tensor* logits = nullptr, Tensor* hidden = nullptr) {
    const int64_t t = int64_t(prompt.size()), vocab = model_.config().vocab_size;
    R1_CHECK(b >= 0 && b < batch_ && cache_.length(b) == 0, "generate", "sequence ", b, " is not an empty slot");
    R1_CHECK(t > 0, "generate", "the prompt is empty");
    check_ids(prompt);
    R1_CHECK(t + 1 <= cache_.capacity(), "generate", "a prompt of ", t, " tokens exceeds the cache capacity ",
             cache_.capacity());
    R1_CHECK(t <= model_.config().max_position_embeddings, "generate", "a prompt of ", t,
             " tokens exceeds max_position_embeddings = ", model_.config().max_position_embeddings);
    for (int64_t i = 0; i < t; ++i) {
      prefill_in_.host_ids()[i] = prompt[size_t(i)];
      prefill_in_.host_positions()[i] = int32_t(i);
      prefill_in_.host_slots()[i] = cache_.slot(b, i);
    }
    prefill_in_.host_seq_lens()[0] = int32_t(t);
    const DeviceBatch db = prefill_in_.upload(1, t, cache_.block_tables().slice(0, b, b + 1), 0);
    ws_.reset();
    Tensor lg = ws_.take(DType::f32, {t, vocab});  // [prompt, vocab]
    if (hidden) {
      *hidden = Tensor::empty(model_.activation_dtype(), {t, model_.config().hidden_size}, Space::cuda, stream());
    }
    model_.forward(ws_, db, cache_.pages(), lg.view<float, 2>(), hidden ? *hidden : Tensor());
    cache_.set_length(b, t);
    auto dev_ids = decode_in_.device_ids();  // [2 * batch]
    sampler_.choose_first(lg.view<const float, 2>().slice(0, t - 1, t), dev_ids.slice(0, b, b + 1), b);
    R1_CUDA_CHECK(cudaMemcpyAsync(host_out_.get(), dev_ids.data + b, 4, cudaMemcpyDeviceToHost, stream()));
    if (logits) *logits = lg.to(Space::host, stream());  // synchronizes
    stream_.sync();
    ids_[size_t(b)] = host_out_.get()[0];
    return ids_[size_t(b)];
  }

  /// One decode step for every sequence (each consumes its last token). Sequences must have been
  /// prefilled. @param logits if set, receives this step's logits, host F32 [batch, vocab].
  const std::vector<int32_t>& step(Tensor* logits = nullptr) {
    for (int64_t b = 0; b < batch_; ++b) {
      const int64_t pos = cache_.length(b);
      R1_CHECK(pos > 0, "generate", "sequence ", b, " was not prefilled");
      R1_CHECK(pos < model_.config().max_position_embeddings, "generate", "position ", pos,
               " reaches max_position_embeddings = ", model_.config().max_position_embeddings);
      decode_in_.host_positions()[b] = int32_t(pos);
      decode_in_.host_slots()[b] = cache_.slot(b, pos);
      decode_in_.host_seq_lens()[b] = int32_t(pos + 1);
    }
    // The ids are already on the device: prefill's or the previous step's sampler wrote them.
    decode_in_.upload(batch_, 1, cache_.block_tables(), -1, /*with_ids=*/false);
    ++steps_;
    if (exec_) {
      R1_CUDA_CHECK(cudaGraphLaunch(exec_, stream()));
    } else if (run_.graph && steps_ >= 2 && note_.empty()) {
      capture();
    } else {
      decode_body();
    }
    R1_CUDA_CHECK(cudaMemcpyAsync(host_out_.get(), decode_in_.device_ids().data, size_t(batch_) * 4,
                                  cudaMemcpyDeviceToHost, stream()));
    if (logits) *logits = Tensor::borrow(step_logits_.data, DType::f32, {batch_, model_.config().vocab_size},
                                         Space::cuda, nullptr).to(Space::host, stream());
    stream_.sync();
    for (int64_t b = 0; b < batch_; ++b) {
      cache_.set_length(b, cache_.length(b) + 1);
      ids_[size_t(b)] = host_out_.get()[b];
    }
    return ids_;
  }

 private:
  // The captured region: everything here is stream-ordered, reads its inputs from device buffers
  // and takes its scratch from the (frozen) workspace at the same addresses on every call.
  void decode_body() {
    const DeviceBatch db = decode_in_.view(batch_, 1, cache_.block_tables(), -1);
    ws_.reset();
    Tensor lg = ws_.take(DType::f32, {batch_, model_.config().vocab_size});  // [batch, vocab]
    step_logits_ = lg.view<float, 2>();
    model_.forward(ws_, db, cache_.pages(), step_logits_);
    sampler_.choose_step(step_logits_.as_const(), decode_in_.device_ids().slice(0, 0, batch_));
  }

  void capture() {
    ws_.reset();  // merges the workspace outside the captured region
    ws_.freeze(true);
    cudaGraph_t g = nullptr;
    std::string err;
    R1_CUDA_CHECK(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeThreadLocal));
    try {
      decode_body();
    } catch (const std::exception& e) {
      err = e.what();
    }
    const cudaError_t end = cudaStreamEndCapture(stream(), &g);
    ws_.freeze(false);
    if (err.empty() && end != cudaSuccess) err = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(end);
    if (err.empty()) {
      const cudaError_t inst = cudaGraphInstantiate(&exec_, g, 0);
      if (inst != cudaSuccess) {
        err = std::string("cudaGraphInstantiate: ") + cudaGetErrorString(inst);
        exec_ = nullptr;
      }
    }
    if (err.empty()) {
      graph_ = g;
      R1_CUDA_CHECK(cudaGraphLaunch(exec_, stream()));
      return;
    }
    if (g) (void)cudaGraphDestroy(g);
    (void)cudaGetLastError();  // clear a capture error so eager decoding can go on
    note_ = "CUDA graph capture of the decode step failed (" + err + "); decoding eagerly";
    decode_body();
  }

  void check_ids(const std::vector<int32_t>& ids) const {
    const int64_t v = model_.config().vocab_size;
    for (size_t i = 0; i < ids.size(); ++i)
      R1_CHECK(ids[i] >= 0 && ids[i] < v, "generate", "token id ", ids[i], " at position ", i,
               " is outside the model's vocabulary of ", v);
  }

  const CudaDeepseekV3& model_;
  GenerateOptions opt_;
  CudaRunOptions run_;
  int64_t batch_;
  Stream stream_;
  Workspace ws_;
  DeviceLatentCache cache_;
  StepInputs prefill_in_, decode_in_;
  DeviceSampler sampler_;
  std::vector<int32_t> ids_;
  std::shared_ptr<int32_t> host_out_;  // [batch] pinned
  View<float, 2> step_logits_;         // [batch, vocab] in the workspace
  int64_t steps_ = 0;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
  std::string note_;
};

struct CudaGenerateResult {
  std::vector<GenerateResult> sequences;  ///< one per prompt, as the host generate() reports it
  bool graph_used = false;
  std::string graph_note;  ///< set when a requested graph could not be used
};

/// Generates for every prompt together (batch = prompts.size()); MTP needs exactly one prompt.
inline CudaGenerateResult generate_cuda_batch(const CudaDeepseekV3& model, const std::vector<std::vector<int32_t>>& prompts,
                                        const GenerateOptions& opt, const CudaRunOptions& run = {});

namespace detail {
/// Speculative decoding with the MTP module, one prompt, eager (see the file comment).
inline GenerateResult generate_cuda_mtp(const CudaDeepseekV3& model, const std::vector<int32_t>& prompt,
                                 const GenerateOptions& opt);
}  // namespace detail

inline CudaGenerateResult generate_cuda_batch(const CudaDeepseekV3& model,
                                              const std::vector<std::vector<int32_t>>& prompts,
                                              const GenerateOptions& opt, const CudaRunOptions& run) {
  ref::validate(opt.sampling);
  R1_CHECK(!prompts.empty(), "generate", "no prompts");
  R1_CHECK(opt.max_new_tokens >= 0, "generate", "max_new_tokens ", opt.max_new_tokens, " is negative");
  CudaGenerateResult out;
  if (opt.mtp) {
    R1_CHECK(model.has_mtp(), "generate", "MTP speculative decoding needs the MTP module (load it)");
    R1_CHECK(prompts.size() == 1, "generate", "MTP speculative decoding on the GPU takes one prompt, got ",
             prompts.size());
    out.sequences.push_back(detail::generate_cuda_mtp(model, prompts[0], opt));
    if (run.graph) out.graph_note = "MTP speculative decoding runs eagerly (no CUDA graph)";
    return out;
  }
  const int64_t batch = int64_t(prompts.size()), vocab = model.config().vocab_size;
  int64_t longest = 0;
  for (const auto& p : prompts) {
    R1_CHECK(!p.empty(), "generate", "a prompt is empty");
    longest = std::max<int64_t>(longest, int64_t(p.size()));
  }
  CudaDecoder dec(model, batch, longest + opt.max_new_tokens + 1, longest, opt, run);
  out.sequences.resize(size_t(batch));
  std::vector<detail::TokenSink> sinks;
  for (int64_t b = 0; b < batch; ++b) {
    GenerateResult& r = out.sequences[size_t(b)];
    r.ids = prompts[size_t(b)];
    r.stats.prompt_tokens = int(prompts[size_t(b)].size());
  }
  for (int64_t b = 0; b < batch; ++b) sinks.emplace_back(opt, out.sequences[size_t(b)]);
  std::vector<bool> live(size_t(batch), opt.max_new_tokens > 0);
  for (int64_t b = 0; b < batch; ++b) {
    GenerateResult& r = out.sequences[size_t(b)];
    const auto t0 = std::chrono::steady_clock::now();
    Tensor lg;  // [prompt, vocab] host F32
    const int32_t first = dec.prefill(b, prompts[size_t(b)], opt.record_logits ? &lg : nullptr);
    r.stats.prefill_seconds = detail::seconds_since(t0);
    if (opt.record_logits) r.prefill_logits = lg;
    if (live[size_t(b)]) {
      const int64_t t = int64_t(prompts[size_t(b)].size());
      live[size_t(b)] = sinks[size_t(b)].commit(first, detail::f32_row(lg, t - 1));
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto any_live = [&] {
    for (bool l : live)
      if (l) return true;
    return false;
  };
  while (any_live()) {
    Tensor lg;  // [batch, vocab] host F32
    const std::vector<int32_t>& ids = dec.step(opt.record_logits ? &lg : nullptr);
    for (int64_t b = 0; b < batch; ++b) {
      if (!live[size_t(b)]) continue;  // finished sequences ride along; their tokens are dropped
      ++out.sequences[size_t(b)].stats.forwards;
      live[size_t(b)] = sinks[size_t(b)].commit(ids[size_t(b)], detail::f32_row(lg, b));
    }
  }
  const double decode = detail::seconds_since(t0);
  for (int64_t b = 0; b < batch; ++b) {
    out.sequences[size_t(b)].stats.decode_seconds = decode;
    sinks[size_t(b)].finish(vocab);
  }
  out.graph_used = dec.graph_used();
  out.graph_note = dec.graph_note();
  return out;
}

/// One prompt (see generate_cuda_batch).
inline GenerateResult generate_cuda(const CudaDeepseekV3& model, const std::vector<int32_t>& prompt,
                                    const GenerateOptions& opt, const CudaRunOptions& run = {},
                                    std::string* graph_note = nullptr) {
  CudaGenerateResult r = generate_cuda_batch(model, std::vector<std::vector<int32_t>>{prompt}, opt, run);
  if (graph_note) *graph_note = r.graph_note;
  return std::move(r.sequences[0]);
}

}  // namespace r1

#include "r1/runtime/generate_cuda_mtp.hpp"

#endif  // R1_WITH_CUDA
