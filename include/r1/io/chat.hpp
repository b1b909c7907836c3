// SPDX-License-Identifier: MIT
// DeepSeek-V3 and DeepSeek-R1 chat templates, hand-written to render exactly what transformers'
// apply_chat_template renders from their Jinja templates for system, user and assistant turns:
//
//   BOS, then every system message (wherever it is) joined by "\n\n", then per turn
//   user:      <｜User｜>content
//   assistant: <｜Assistant｜>content<｜end▁of▁sentence｜>
//              (R1: content after the last "</think>", dropping earlier turns' reasoning)
//   and with add_generation_prompt: <｜Assistant｜> (R1: <｜Assistant｜><think>\n).
//
// encode_chat inserts the template's control tokens as ids and encodes message contents in
// user-content mode, so text inside a message can never become a control token.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "r1/core/error.hpp"
#include "r1/io/tokenizer.hpp"

namespace r1::io {

enum class ChatTemplate { deepseek_v3, deepseek_r1 };

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

/// "deepseek-v3" / "deepseek-r1" (the names r1-tokenize and r1-generate accept).
inline std::optional<ChatTemplate> parse_chat_template(std::string_view name) {
  if (name == "deepseek-v3") return ChatTemplate::deepseek_v3;
  if (name == "deepseek-r1") return ChatTemplate::deepseek_r1;
  return std::nullopt;
}

namespace chat_detail {

inline constexpr std::string_view bos = "<｜begin▁of▁sentence｜>";
inline constexpr std::string_view eos = "<｜end▁of▁sentence｜>";
inline constexpr std::string_view user = "<｜User｜>";
inline constexpr std::string_view assistant = "<｜Assistant｜>";
inline constexpr std::string_view think = "<think>";
inline constexpr std::string_view end_think = "</think>";

/// A rendered conversation: control tokens and text, in order.
struct Part {
  bool control;
  std::string_view text;
};

inline std::vector<Part> parts(const std::vector<ChatMessage>& messages, ChatTemplate tmpl,
                               bool add_generation_prompt, std::string& system_storage) {
  R1_CHECK(!messages.empty(), "chat.render",
           "empty conversation (transformers' apply_chat_template rejects it too)");
  std::vector<Part> out;
  out.push_back({true, bos});
  bool first_system = true;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role != "system" && m.role != "user" && m.role != "assistant")
      fail("chat.render", "message ", i, " has role '", m.role,
           "': the DeepSeek templates support system, user and assistant (tool calls and tool "
           "results are not supported)");
    if (m.role == "system") {
      if (!first_system) system_storage += "\n\n";
      system_storage += m.content;
      first_system = false;
    }
  }
  out.push_back({false, system_storage});
  for (const ChatMessage& m : messages) {
    if (m.role == "user") {
      out.push_back({true, user});
      out.push_back({false, m.content});
    } else if (m.role == "assistant") {
      std::string_view content = m.content;
      if (tmpl == ChatTemplate::deepseek_r1) {
        const size_t k = content.rfind(end_think);
        if (k != std::string_view::npos) content.remove_prefix(k + end_think.size());
      }
      out.push_back({true, assistant});
      out.push_back({false, content});
      out.push_back({true, eos});
    }
  }
  if (add_generation_prompt) {
    out.push_back({true, assistant});
    if (tmpl == ChatTemplate::deepseek_r1) {
      out.push_back({true, think});
      out.push_back({false, "\n"});
    }
  }
  return out;
}

}  // namespace chat_detail

/// The prompt text, as apply_chat_template(messages, tokenize=False) renders it.
inline std::string render_chat(const std::vector<ChatMessage>& messages, ChatTemplate tmpl,
                               bool add_generation_prompt = true) {
  std::string system;
  std::string out;
  for (const chat_detail::Part& p : chat_detail::parts(messages, tmpl, add_generation_prompt, system))
    out += p.text;
  return out;
}

/// The prompt ids: control tokens as ids, contents encoded as user content. For contents without
/// control-token strings this equals HF's encode(render_chat(...)).
inline std::vector<int32_t> encode_chat(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                                        ChatTemplate tmpl, bool add_generation_prompt = true) {
  std::string system;
  std::vector<int32_t> ids;
  for (const chat_detail::Part& p : chat_detail::parts(messages, tmpl, add_generation_prompt, system)) {
    if (!p.control) {
      tokenizer.encode_append(p.text, EncodeMode::user_content, ids);
      continue;
    }
    const std::optional<int32_t> id = tokenizer.added_token_id(p.text);
    R1_CHECK(id.has_value(), "chat.encode", tokenizer.origin(), " has no added token ", p.text,
             (p.text == chat_detail::think
                  ? " (a DeepSeek-V3 tokenizer.json: load it with LoadOptions::r1_think_tokens to use "
                    "ids 128798/128799 as <think>/</think>, as DeepSeek-R1 does)"
                  : " (not a DeepSeek-V3/R1 tokenizer)"));
    ids.push_back(*id);
  }
  return ids;
}

}  // namespace r1::io
