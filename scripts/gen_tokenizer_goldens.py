#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Generates r1's extra tokenizer goldens with the real Hugging Face `tokenizers` (and transformers
for chat templates), deterministically, into tests/data/tokenizer/:

  adversarial.jsonl   DeepSeek-V3 tokenizer: {"text", "ids", "decoded"} for hand-picked and seeded
                      random adversarial strings (combining marks, emoji ZWJ sequences,
                      unassigned/private-use/new-in-Unicode-16 code points, mixed scripts, numbers
                      in many scripts, whitespace varieties, CR/LF runs, long runs, control-token
                      strings inside text and with spaces around them).
  decode.jsonl        {"ids", "decoded", "decoded_skip"}: id sequences whose bytes split UTF-8
                      characters or are invalid UTF-8, and special tokens (skip_special_tokens).
  chat_extra.jsonl    {"template", "messages", "add_generation_prompt", "rendered", "ids"}: V3 and R1
                      templates rendered by transformers' apply_chat_template; R1 with its template
                      and ids 128798/128799 as <think>/</think>, as in DeepSeek-R1's files.
  pretok.jsonl +      {"config" (index into pretok-configs.json), "text", "pieces"}: other pre-tokenizers (Llama-3, Qwen2, GPT-2
                      ByteLevel, every Split behaviour, invert, nullable and look-ahead patterns)
  pretok-configs.json through HF's pre_tokenize_str; pieces as raw text.
  flags.jsonl +       a small byte-level tokenizer with added tokens using lstrip/rstrip/single_word/
  flags-tokenizer.json  normalized/special, and HF's ids for texts around them.

Usage:  pip install 'tokenizers==0.23.*' transformers jinja2
        python3 scripts/gen_tokenizer_goldens.py [--random N --out FILE]
(--random writes N extra random DeepSeek-V3 cases to FILE instead, for local differential runs.)
"""
import argparse
import json
import os
import random
import sys

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
OUT = os.path.join(DATA, "tokenizer")
V3_DIR = os.path.join(DATA, "deepseek-v3")

# The DeepSeek-R1 chat template (its hub tokenizer_config.json after the 2025-02 "<think>\n"
# update): the V3 template plus dropping earlier turns' reasoning and opening <think>.
R1_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}"
    "{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}"
    "{%- else %}{% set ns.system_prompt = ns.system_prompt + '\\n\\n' + message['content'] %}{%- endif %}"
    "{%- endif %}{%- endfor %}{{ bos_token }}{{ ns.system_prompt }}{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and 'tool_calls' in message %}{%- set ns.is_tool = false -%}"
    "{%- for tool in message['tool_calls'] %}{%- if not ns.is_first %}{%- if message['content'] is none %}"
    "{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}"
    "{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}"
    "{%- endif %}{%- set ns.is_first = true -%}{%- else %}"
    "{{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}"
    "{%- endif %}{%- endfor %}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and 'tool_calls' not in message %}{%- if ns.is_tool %}"
    "{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}"
    "{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}"
    "{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    "{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    "{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    "{%- set ns.is_output_first = false %}{%- else %}"
    "{{'<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}"
    "{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}"
)

CONTROL = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
           "<｜fim▁hole｜>", "<｜tool▁calls▁begin｜>", "<｜tool▁sep｜>", "<｜place▁holder▁no▁798｜>",
           "<｜EOT｜>", "<think>", "</think>"]

# Code points by kind, for hand-written and random strings.
POOL = {
    "ascii_letter": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "digit": "0123456789",
    "ascii_punct": "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "space": " \t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u2007\u200a\u2028\u2029\u202f\u205f\u3000",
    "not_space": "\u200b\u200c\u200d\u2060\ufeff\u180e",  # look like space, are not \s
    "combining": "\u0300\u0301\u0308\u0327\u0345\u20dd\u20e3\u0e31\u093f\u05b4\ufe0f\ufe0e",
    "latin": "éäöüßçñÅæøœłŁĳǅǈﬁﬂẞſK",
    "cjk": "深度求索的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴切尔呀",
    "kana": "のテキストとカタカナひらがなアイウエオ゠ヿ゛ー・",
    "hangul": "한국어문장도포함합니다각",
    "cjk_outside_range": "龦龻鿕㐀䶵𠀀𪛖〇々〆〤",  # Han outside [一-龥] or not Han letters
    "cyrillic": "Русскийтекстъё",
    "arabic": "العربيةنصمناليمين\u064b\u0651",
    "devanagari": "हिन्दीनमस्ते\u094d",
    "thai": "ภาษาไทย\u0e48\u0e49",
    "numbers_other": "٠١٢٣٤٥٦٧٨٩۰۱۲०१२३১২৩๑๒๓１２３ⅠⅡⅫⅻ²³¹½¼¾①②⑳〇𝟘𝟙𝟚𐄇፩",
    "symbols": "∑∫√≈±×÷€£¥₿©®™°§¶†‡•…‰′″←→↑↓⇒∀∃∅∈∞≠≤≥⊂⊃★☆♠♣♥♦✓✗",
    "punct_other": "«»‹›“”‘’„‚—–‐‑‒―・。、，！？：；「」『』【】〔〕（）《》〈〉",
    "emoji": "😀👍🏽🚀🇨🇳🇺🇸👨‍👩‍👧‍👦🏳️‍🌈❤️‍🔥🧑🏿‍💻1️⃣#️⃣🫠🫨",
    "private_unassigned": "\ue000\uf8ff\U000f0000\U0010fffd\u0378\u0380\U0002ffff\U000e0001\U000e007f\ufffe\uffff",
    "unicode_16": "\u1c89\u1c8a\U00010d40\U00010d4a\U00011380\U00016d40\U0001ccf0\U0001f8b0\u2fff\U0002ebf0",
    "control": "\x00\x01\x07\x1b\x7f\x80\x9f",
}


def text_pool():
    return "".join(POOL.values())


def hand_written():
    t = []
    t += ["e\u0301", "a\u0300\u0301\u0302\u0303", "\u0301start with a mark", " \u0301 mark after space",
          "1\u0301 mark after digit", "!\u0301 mark after punct", "\u0301\u0301\u0301", "ñ vs n\u0303",
          "Zalgo: Z\u0351\u036b\u0343a\u0352\u0303l\u0346g\u0301o\u0360", "\u093f\u094d", "क्षत्रिय"]
    t += ["👨‍👩‍👧‍👦", "🏳️‍🌈 flag", "❤️‍🔥", "🧑🏿‍💻 dev", "1️⃣2️⃣#️⃣", "👍🏽👍🏻👍", "🇯🇵🇰🇷🇩🇪", "a😀b", " 😀 ", "😀\n😀"]
    t += ["\ue000\ue001 private", "\U000f0000\U0010fffd", "unassigned \u0378\u0380 here", "\U0002ffff\U000e0001",
          "\ufffe\uffff", "new in Unicode 16: \u1c89\u1c8a \U00010d40 \U00011380 \U00016d40 \U0001ccf0",
          "CJK ext: \U0002ebf0\U00031350 \u2fff", "\x00nul\x00", "\x1b[31mred\x1b[0m", "\x7f\x80\x9f"]
    t += ["Mixed 中文English日本語한국어Русский العربية हिन्दी ไทย", "深度Deep求索Seek", "テスト123テスト",
          "漢字かなカナ混じり文", "龦龻鿕 outside the range", "〇々〆", "ひらがな゠カタカナヿ", "ｈａｌｆｗｉｄｔｈ　ｆｕｌｌ"]
    t += ["٠١٢٣٤٥٦٧٨٩", "۱۲۳۴", "०१२३४५", "১২৩", "๑๒๓๔", "１２３４５６７", "ⅠⅡⅢⅫ ⅻ", "x²+y³=z¹", "½¼¾",
          "①②③⑳", "〇一二三", "𝟘𝟙𝟚𝟛", "12345678901234567890", "3.14159265358979", "1,000,000.00", "-0.5e-10",
          "0x1F2E3D", "v1.2.3-rc4", "2024-01-01T00:00:00Z", "৳১২৩", "፩፪፫"]
    t += ["a\u00a0b", "a\u3000b", "a\u2028b\u2029c", "a\u0085b", "a\u200bb", "a\ufeffb", "a\u1680b",
          "a\u180eb", "\u00a0\u00a0lead", "trail\u3000\u3000", "\u2028", "\u3000", "\u00a0", "\t\t\tx",
          "\x0b\x0c\x0b", "a \u00a0 b", " \u3000 ", "a\u202fb\u205fc\u2007d"]
    t += ["\r\n", "\r\n\r\n", "\r\r\n\n", "\n\r", "a\r\nb\r\n\r\nc", "  \r\n  x", "\r\n  \r\n  ", "x\r\n\r\n\r\n",
          " \n \n \n", "\n\n\n\n\n\n\n\n", "line1\nline2\r\nline3\rline4", "\t\r\n\t", "!!!\r\n\r\n", "a.\n\n b"]
    t += ["a" * 300, "1" * 100, " " * 100 + "x", "\n" * 50, "中" * 200, "😀" * 40, "ab" * 100, "!?" * 60,
          "\u0301" * 30, " \t" * 40, "x" + " " * 70 + "y", "- " * 50, "A" * 257]
    t += ["<｜User｜>", " <｜User｜> ", "  <｜User｜>  ", "a<｜User｜>b", "<｜User｜><｜User｜>", "<｜User",
          "｜User｜>", "<<｜User｜>>", "<｜User｜｜>", "<｜Assistant｜>\n<think>\n", "text<｜end▁of▁sentence｜>more",
          "<｜begin▁of▁sentence｜><｜begin▁of▁sentence｜>", "< ｜User｜>", "<｜user｜>", "<｜fim▁hole｜>code<｜fim▁end｜>",
          "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{}\n```<｜tool▁call▁end｜>",
          "<think>reasoning</think>answer", "<｜place▁holder▁no▁798｜><｜place▁holder▁no▁799｜>", "<｜EOT｜>",
          "<｜▁pad▁｜>", "x <｜Assistant｜>y", "\n<｜User｜>\n", "中文<｜User｜>中文", "1<｜User｜>2"]
    t += ["'s 't 're 've 'm 'll 'd", "'S 'T 'RE 'VE 'M 'LL 'D", "'ſ", "don't", "DON'T", "it's", "I'M",
          "'''", "''s", "('abc')", "#include <stdio.h>", "(a+b)*c", "a.b.c", "@user #tag $var %p",
          "__init__", "--flag=value", "->", "=>", "::", "...", "?!", "\"quoted\"", "'single'", "`code`",
          "    def f(self):\n        return self.x\n", "if (x) {\n\ty = 1;\n}\n", "<div class=\"a\">text</div>",
          "https://example.com/a_b?c=d&e=f#g", "user@example.com", "C:\\Windows\\System32", "$$x^2$$",
          "naïve café résumé", "ΑΒΓ αβγ", "İstanbul ıi", "ǅungla Ǉ ǈ", "ﬁﬂﬃ", "ẞß", "Åström"]
    return t


def random_text(rng, max_len):
    kinds = list(POOL)
    out = []
    n = rng.randint(1, max_len)
    while len(out) < n:
        r = rng.random()
        if r < 0.04:
            out.append(rng.choice(CONTROL))
        elif r < 0.08:
            out.append(rng.choice(POOL[rng.choice(kinds)]) * rng.randint(2, 12))
        else:
            out.append(rng.choice(POOL[rng.choice(kinds)]))
    return "".join(out)


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} lines to {os.path.relpath(path, ROOT)}", file=sys.stderr)


def gen_adversarial(tok, texts):
    rows = []
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False).ids
        rows.append({"text": t, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
    return rows


def gen_decode(tok, rng):
    vocab = tok.get_vocab()
    # Tokens that are a single byte-level character carry one byte each: sequences of them can
    # split or corrupt UTF-8 on purpose.
    byte_tokens = sorted(i for s, i in vocab.items() if len(s) == 1 and i < 128000)
    specials = [0, 1, 2, 128803, 128804, 128798, 128805]
    rows = []
    for _ in range(150):
        ids = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.6:
                ids.append(rng.choice(byte_tokens))
            elif r < 0.75:
                ids.append(rng.choice(specials))
            else:
                ids.append(rng.randrange(128000))
        rows.append(ids)
    # Hand-picked: "é" = C3 A9 split over two byte tokens, then truncated, then corrupted.
    def byte_id(b):
        return vocab[ByteLevelChars[b]]
    rows += [[byte_id(0xC3), byte_id(0xA9)], [byte_id(0xC3)], [byte_id(0xE4), byte_id(0xB8)],
             [byte_id(0xE4), byte_id(0x41)], [byte_id(0xF0), byte_id(0x9F), byte_id(0x98)],
             [byte_id(0xED), byte_id(0xA0), byte_id(0x80)], [byte_id(0xC0), byte_id(0x80)],
             [byte_id(0xF4), byte_id(0x90), byte_id(0x80), byte_id(0x80)], [byte_id(0xFF)],
             [byte_id(0x80), byte_id(0x80)], [0, byte_id(0xE4), 1, byte_id(0xB8), byte_id(0xAD)]]
    return [{"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
             "decoded_skip": tok.decode(ids, skip_special_tokens=True)} for ids in rows]


def byte_level_chars():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


ByteLevelChars = byte_level_chars()
CharBytes = {c: b for b, c in ByteLevelChars.items()}


def gen_chat():
    from transformers import AutoTokenizer
    v3 = AutoTokenizer.from_pretrained(V3_DIR)
    r1 = make_r1_tokenizer()
    convs = [
        [{"role": "user", "content": "Hello"}],
        [{"role": "system", "content": "Sys A"}, {"role": "system", "content": "Sys B"}, {"role": "user", "content": "Q"}],
        [{"role": "user", "content": "Q1"}, {"role": "system", "content": "late system"}, {"role": "user", "content": "Q2"}],
        [{"role": "system", "content": ""}, {"role": "system", "content": "second"}, {"role": "user", "content": "x"}],
        [{"role": "user", "content": "What is 1+1?"}, {"role": "assistant", "content": "<think>\nadd\n</think>\n\n2"},
         {"role": "user", "content": "And 2+2?"}],
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "r1</think>x</think>final"},
         {"role": "user", "content": "b"}, {"role": "assistant", "content": "no think here"}],
        [{"role": "user", "content": "多轮对话"}, {"role": "assistant", "content": "好的。"}, {"role": "user", "content": "继续"},
         {"role": "assistant", "content": "嗯\n"}],
        [{"role": "user", "content": ""}],
        [{"role": "assistant", "content": "assistant first"}],
        [{"role": "user", "content": "  spaces  \n\n"}, {"role": "assistant", "content": "\n"}],
        [{"role": "user", "content": "code:\n```python\nprint('hi')\n```"}],
        [{"role": "system", "content": "You are R1.\n\nBe brief."}, {"role": "user", "content": "😀 emoji 🇨🇳"}],
    ]
    rows = []
    for tmpl in ["deepseek-v3", "deepseek-r1"]:
        tok = v3 if tmpl == "deepseek-v3" else r1
        for conv in convs:
            for gen in [True, False]:
                rendered = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)
                ids = tok.encode(rendered, add_special_tokens=False)
                rows.append({"template": tmpl, "messages": conv, "add_generation_prompt": gen,
                             "rendered": rendered, "ids": ids})
    return rows


def make_r1_tokenizer():
    """The V3 files with R1's differences: <think>/</think> at 128798/128799 and R1's template."""
    import tempfile
    from transformers import AutoTokenizer
    tj = json.load(open(os.path.join(V3_DIR, "tokenizer.json"), encoding="utf-8"))
    for t in tj["added_tokens"]:
        if t["id"] in (128798, 128799):
            t["content"] = "<think>" if t["id"] == 128798 else "</think>"
            t["special"] = False
            t["normalized"] = True
    cfg = json.load(open(os.path.join(V3_DIR, "tokenizer_config.json"), encoding="utf-8"))
    cfg["chat_template"] = R1_TEMPLATE
    d = tempfile.mkdtemp(prefix="r1-tokenizer-")
    json.dump(tj, open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8"), ensure_ascii=False)
    json.dump(cfg, open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8"), ensure_ascii=False)
    return AutoTokenizer.from_pretrained(d)


LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def split(pattern, behavior="Isolated", invert=False, kind="Regex"):
    return {"type": "Split", "pattern": {kind: pattern}, "behavior": behavior, "invert": invert}


def byte_level(prefix=False, regex=False):
    return {"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": True, "use_regex": regex}


def pretok_configs():
    cfgs = [
        [split(LLAMA3), byte_level()],
        [split(QWEN2), byte_level()],
        [byte_level(False, True)],
        [byte_level(True, True)],
        [split(r"\s+"), byte_level(True, False)],
        [split(r"\p{N}{1,3}"), split(r"[一-龥぀-ゟ゠-ヿ]+"), byte_level(True, True)],
    ]
    for behavior in ["Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous", "Isolated"]:
        for invert in [False, True]:
            cfgs.append([split(r"\s+|\p{P}", behavior, invert), byte_level()])
    cfgs += [
        [split("a*"), byte_level()],
        [split(r"x?"), byte_level()],
        [split(r"(?:ab)*", "Removed"), byte_level()],
        [split(r"\d(?=\d)", "MergedWithNext"), byte_level()],
        [split(r"(?!a)."), byte_level()],
        [split(r"a+?b?"), byte_level()],
        [split(r"[^\s]+"), byte_level()],
        [split(r"\w+|\W"), byte_level()],
        [split(r"(?i)[a-c]+|X{2,3}"), byte_level()],
        [split(r"\p{Lu}\p{Ll}*|\P{L}+"), byte_level()],
        [split(r"[\p{Han}]", kind="String"), byte_level()],
        [split("-", "Removed", kind="String"), byte_level()],
        [split(". ", "MergedWithPrevious", kind="String"), byte_level()],
        [split(r"\s", "Contiguous", True), byte_level(True, True)],
    ]
    return cfgs


def gen_pretok(rng):
    rows = []
    texts = hand_written()
    pool = "ab AB xX-. 12 3\n\t\r中文カナ,!?'s'LL" + POOL["space"] + POOL["combining"][:4] + "😀é"
    for index, cfg in enumerate(pretok_configs()):
        pt = Tokenizer.from_str(json.dumps(minimal_tokenizer(cfg))).pre_tokenizer
        chosen = rng.sample(texts, 12) + ["".join(rng.choice(pool) for _ in range(rng.randint(1, 30))) for _ in range(12)]
        for t in chosen:
            pieces = [piece_to_text(p) for p, _ in pt.pre_tokenize_str(t)]
            rows.append({"config": index, "text": t, "pieces": pieces})
    return rows


def piece_to_text(p):
    return bytes(CharBytes[c] for c in p).decode("utf-8")


def minimal_tokenizer(pre_tokenizer_steps, added=None, merges=None):
    vocab = {ByteLevelChars[b]: b for b in range(256)}
    merges = merges or []
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added or [],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": pre_tokenizer_steps},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": [list(m) for m in merges]},
    }


def gen_flags(rng):
    G = ByteLevelChars[ord(" ")]
    merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), (G, "w"), ("o", "r"), (G + "w", "or"),
              ("l", "d"), (G + "wor", "ld"), (G, "t"), ("o", "k")]
    base = 256 + len({a + b for a, b in merges})
    names = [("[LS]", dict(lstrip=True)), ("[RS]", dict(rstrip=True)), ("[LRS]", dict(lstrip=True, rstrip=True)),
             ("tok", dict(single_word=True)), ("[SW]", dict(single_word=True, lstrip=True)),
             ("<norm>", dict(normalized=True)), ("<sp>", dict(special=True)), ("<sp2>", dict(special=True, rstrip=True)),
             ("ok", dict()), ("[LS]x", dict())]
    added = []
    for i, (content, flags) in enumerate(names):
        t = {"id": base + i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": False}
        t.update(flags)
        added.append(t)
    tj = minimal_tokenizer([split(LLAMA3), byte_level()], added, merges)
    tok = Tokenizer.from_str(json.dumps(tj))
    # Ids as HF assigns them (tests check r1 assigns the same).
    for t in tj["added_tokens"]:
        t["id"] = tok.token_to_id(t["content"])
    tok = Tokenizer.from_str(json.dumps(tj))
    pieces = [n for n, _ in names] + ["hello", " world", "  ", " ", "\t", "x", "tokens", "\u3000", "\n", "é"]
    rows = []
    for _ in range(300):
        t = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8)))
        ids = tok.encode(t, add_special_tokens=False).ids
        rows.append({"text": t, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False), "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
    return tj, rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--random", type=int, default=0)
    ap.add_argument("--out", default="")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    tok = Tokenizer.from_file(os.path.join(V3_DIR, "tokenizer.json"))
    rng = random.Random(args.seed)
    if args.random:
        texts = [random_text(rng, 80) for _ in range(args.random)]
        write_jsonl(args.out, gen_adversarial(tok, texts))
        return
    texts = hand_written() + [random_text(rng, 40) for _ in range(250)]
    write_jsonl(os.path.join(OUT, "adversarial.jsonl"), gen_adversarial(tok, texts))
    write_jsonl(os.path.join(OUT, "decode.jsonl"), gen_decode(tok, rng))
    write_jsonl(os.path.join(OUT, "chat_extra.jsonl"), gen_chat())
    with open(os.path.join(OUT, "pretok-configs.json"), "w", encoding="utf-8") as f:
        json.dump(pretok_configs(), f, ensure_ascii=False, indent=0)
    write_jsonl(os.path.join(OUT, "pretok.jsonl"), gen_pretok(rng))
    tj, rows = gen_flags(rng)
    with open(os.path.join(OUT, "flags-tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)
    write_jsonl(os.path.join(OUT, "flags.jsonl"), rows)


if __name__ == "__main__":
    main()
