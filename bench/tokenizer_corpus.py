#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Builds the tokenizer benchmark corpus: a long, deterministic mix of English prose, Chinese
prose and code, as documents separated by form-feed lines ("\\f\\n"), from the small seed text in
bench/data/tokenizer_corpus_seed.txt. Paragraphs are sampled with a fixed seed and varied
(numbers and identifiers replaced, sentences shuffled, English terms dropped into Chinese), so
the text is not one paragraph repeated, yet the file is the same on every machine.

Usage: python3 bench/tokenizer_corpus.py --out corpus.txt [--mib 4] [--seed 1]
"""
import argparse
import os
import random
import re

SEED_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tokenizer_corpus_seed.txt")
WORDS = ["model", "cache", "buffer", "token", "tensor", "layer", "router", "expert", "kernel", "batch",
         "stream", "index", "vector", "matrix", "weight", "scale", "offset", "header", "shard", "prompt"]


def load_seed():
    sections = {"en": [], "zh": [], "code": []}
    current = None
    code = []
    with open(SEED_FILE, encoding="utf-8") as f:
        for line in f.read().split("\n"):
            if line in ("#en", "#zh", "#code"):
                current = line[1:]
                continue
            if current is None:
                continue  # the header
            if current == "code":
                if line == "%%":
                    sections["code"].append("\n".join(code).strip("\n") + "\n")
                    code = []
                else:
                    code.append(line)
            elif line.strip():
                sections[current].append(line)
    if code:
        sections["code"].append("\n".join(code).strip("\n") + "\n")
    return sections


def vary_numbers(text, rng):
    return re.sub(r"\d+", lambda m: str(rng.randint(0, 10 ** len(m.group()))), text)


def vary_identifiers(code, rng):
    names = {}
    for name in ("tokens", "ranks", "values", "capacity", "items", "bytes", "len", "best", "key"):
        names[name] = rng.choice([name, name + "_" + rng.choice(WORDS), rng.choice(WORDS) + "_" + name])
    return re.sub(r"\b(" + "|".join(names) + r")\b", lambda m: names[m.group()], code)


def english_doc(seed, rng):
    paras = rng.sample(seed["en"], rng.randint(2, 5))
    out = []
    for p in paras:
        sentences = re.split(r"(?<=[.;]) ", p)
        rng.shuffle(sentences)
        out.append(vary_numbers(" ".join(sentences), rng))
    return "\n\n".join(out)


def chinese_doc(seed, rng):
    paras = rng.sample(seed["zh"], rng.randint(2, 5))
    out = []
    for p in paras:
        sentences = [s for s in re.split(r"(?<=[。；])", p) if s]
        rng.shuffle(sentences)
        text = "".join(sentences)
        if rng.random() < 0.3:  # mixed-language text, as in real Chinese technical writing
            k = rng.randrange(len(text))
            text = text[:k] + rng.choice(WORDS) + text[k:]
        out.append(vary_numbers(text, rng))
    return "\n".join(out)


def code_doc(seed, rng):
    return "\n".join(vary_numbers(vary_identifiers(c, rng), rng) for c in rng.sample(seed["code"], rng.randint(1, 3)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--mib", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    seed = load_seed()
    rng = random.Random(args.seed)
    target = int(args.mib * (1 << 20))
    docs, size = [], 0
    makers = [english_doc, chinese_doc, code_doc]
    while size < target:
        d = rng.choice(makers)(seed, rng)
        docs.append(d)
        size += len(d.encode("utf-8")) + 2
    with open(args.out, "w", encoding="utf-8", newline="") as f:
        f.write("\f\n".join(docs))
    print(f"{args.out}: {len(docs)} documents, {size / (1 << 20):.2f} MiB")


if __name__ == "__main__":
    main()
