#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Single-threaded encode throughput of Hugging Face `tokenizers` on the benchmark corpus, the
peer of bench/tokenizer_bench.cpp (run both through scripts/bench-tokenizer.sh).

Encodes every document of the corpus (form-feed separated) with add_special_tokens=False, best
of --repeat runs by process CPU time (one thread, so a busy machine does not skew it), with both
HF APIs: encode_batch_fast (no offsets, Rust loop) and encode (one call
per document); prints MB/s for each, the token count and a checksum of all ids that r1's
benchmark prints too, so the two are known to do the same work.
"""
import argparse
import os
import time

# One thread: Rayon reads this when its pool starts, so it must be set before the import.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from tokenizers import Tokenizer  # noqa: E402


def checksum(all_ids):
    h = 0
    for ids in all_ids:
        for i in ids:
            h = (h * 1000003 + i + 1) % (1 << 61)
    return h


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", required=True, help="tokenizer.json")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tok = Tokenizer.from_file(args.tokenizer)
    with open(args.corpus, encoding="utf-8", newline="") as f:
        docs = f.read().split("\f\n")
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    results = {}
    for name in ["encode_batch_fast", "encode"]:
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.process_time()
            if name == "encode":
                out = [tok.encode(d, add_special_tokens=False).ids for d in docs]
            else:
                out = [e.ids for e in tok.encode_batch_fast(docs, add_special_tokens=False)]
            best = min(best, time.process_time() - t0)
        results[name] = (nbytes / best / 1e6, out)
    ids = results["encode_batch_fast"][1]
    import tokenizers
    print(f"hf tokenizers {tokenizers.__version__}: {len(docs)} documents, {nbytes} bytes, "
          f"{sum(len(x) for x in ids)} tokens, checksum {checksum(ids)}")
    for name, (mbs, _) in results.items():
        print(f"hf {name}: {mbs:.2f} MB/s")


if __name__ == "__main__":
    main()
