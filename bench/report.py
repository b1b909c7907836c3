#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The ratio table of r1's benchmarks (standard library only).

Reads Google Benchmark JSON files written by r1's benchmarks (bench/bench_common.cuh) and the JSON
list written by tools/peer_baselines.py, and prints one line per (kernel, shape): r1's time, its
GB/s, TFLOP/s and % of the in-run roofline (the fastest r1 row; "via" names it), the fastest
vendor row measured in the same process (any backend not starting with "own", e.g. cublaslt) with
the time ratio r1 / vendor, and the peer row named by the row's label with the ratio of the fastest
row of the group (what automatic dispatch can reach) to the peer.

Matching is generic: every r1 benchmark labels its rows "kernel=..;shape=..;backend=..;peer=..";
rows with the same kernel and shape are compared with each other, and `peer` is the exact name of
a peer_baselines.py row ("" for none). A new benchmark needs no change here.

usage: report.py [--peers baselines.json] [--markdown table.md] bench.json [bench.json ...]
"""
import argparse
import json
import os
import re
import sys


def parse_label(label):
    out = {}
    for part in (label or "").split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def load_benchmarks(paths):
    rows, errors, contexts = [], [], []
    for path in paths:
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            errors.append((path, "unreadable: %s" % e))
            continue
        contexts.append(data.get("context", {}))
        for b in data.get("benchmarks", []):
            if b.get("run_type") == "aggregate":
                continue
            if b.get("error_occurred"):
                errors.append((b.get("name", "?"), b.get("error_message", "")))
                continue
            lab = parse_label(b.get("label", ""))
            if "kernel" not in lab or "us" not in b:
                continue
            rows.append({
                "kernel": lab["kernel"], "shape": lab.get("shape", ""), "backend": lab.get("backend", ""),
                "peer": lab.get("peer", ""), "bound": lab.get("bound", ""),
                "us": float(b["us"]), "gbps": float(b.get("GB/s", 0)), "tflops": float(b.get("TFLOP/s", 0)),
                "roof": float(b.get("roofline_%", 0)), "name": b.get("name", ""),
            })
    return rows, errors, contexts


def load_peers(path):
    if not path:
        return {}
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        print("report: peer baselines unreadable (%s): %s" % (path, e), file=sys.stderr)
        return {}
    return {r["name"]: float(r["ms"]) * 1000.0 for r in data if "name" in r and "ms" in r}


def is_r1(backend):
    return backend.startswith("own")


# which r1 kernel the "r1" columns show (the fastest r1 row of the group)
VIA = {"own": "mma", "own_wgmma": "wg", "own_sm80": "s80", "cublaslt": "lt"}


def fmt(v, digits=1, width=7):
    if v is None:
        return "-".rjust(width)
    return ("%.*f" % (digits, v)).rjust(width)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("benchmarks", nargs="+", help="Google Benchmark JSON files of r1's benchmarks")
    ap.add_argument("--peers", action="append", default=[],
                    help="peer rows: baselines.json of tools/peer_baselines.py, peers_extra.json of "
                         "bench/peers_extra.py (repeat the flag for several files)")
    ap.add_argument("--markdown", help="also write every row as a markdown table to this file")
    args = ap.parse_args()

    rows, errors, contexts = load_benchmarks(args.benchmarks)
    peers = {}
    for path in args.peers:
        peers.update(load_peers(path))
    if contexts:
        c = contexts[0]
        print("device %s | copy %.0f GB/s | bf16 GEMM %.1f TFLOP/s | fp8 taken as %.1f TFLOP/s (measured in-run)" % (
            c.get("r1_device", "?"), float(c.get("r1_copy_GBps", 0)), float(c.get("r1_bf16_TFLOPs", 0)),
            float(c.get("r1_fp8_TFLOPs", 0))))

    # groups in first-seen order
    groups = {}
    for r in rows:
        groups.setdefault((r["kernel"], r["shape"]), []).append(r)

    header = "%-18s %-19s %-3s %7s %5s %6s %5s |%7s %5s |%7s %5s" % (
        "kernel", "shape", "via", "r1 us", "GB/s", "TF/s", "%roof", "vend us", "r1/v", "peer us", "r1/p")
    print(header)
    print("-" * len(header))
    slower_than_peer, wins = [], {}
    for (kernel, shape), rs in groups.items():
        r1_rows = [r for r in rs if is_r1(r["backend"])]
        vendor = [r for r in rs if not is_r1(r["backend"])]
        best_r1 = min(r1_rows, key=lambda r: r["us"]) if r1_rows else None
        best_v = min(vendor, key=lambda r: r["us"]) if vendor else None
        peer_name = next((r["peer"] for r in rs if r["peer"]), "")
        peer_us = peers.get(peer_name) if peer_name else None
        ref = best_r1 or best_v
        ratio_v = best_r1["us"] / best_v["us"] if best_r1 and best_v else None
        fastest = min(rs, key=lambda r: r["us"])
        ratio_p = fastest["us"] / peer_us if peer_us else None
        print("%-18s %-19s %-3s %s %s %s %s |%s %s |%s %s" % (
            kernel[:18], shape[:19], VIA.get(ref["backend"], ref["backend"][:3]), fmt(ref["us"]),
            fmt(ref["gbps"], 0, 5), fmt(ref["tflops"], 1, 6),
            fmt(ref["roof"], 1, 5), fmt(best_v["us"] if best_v else None), fmt(ratio_v, 2, 5), fmt(peer_us),
            fmt(ratio_p, 2, 5)))
        if ratio_p is not None and ratio_p > 1.0:
            slower_than_peer.append("%s %s: %.1f us vs peer %.1f us (%s)" % (kernel, shape, fastest["us"], peer_us, peer_name))
        if ratio_v is not None:
            m = re.match(r"m(\d+)\b", shape)
            key = (kernel, int(m.group(1)) if m else shape)
            w = wins.setdefault(key, [0, 0])
            w[0] += ratio_v < 1.0
            w[1] += 1

    if wins:
        print("\nr1 own kernel faster than the vendor row (per kernel and M, over shapes): dispatch hints")
        line = []
        for (kernel, m), (won, total) in sorted(wins.items(), key=lambda kv: (kv[0][0], str(kv[0][1]).zfill(8))):
            line.append("%s m%s %d/%d" % (kernel, m, won, total))
        for i in range(0, len(line), 4):
            print("  " + " | ".join(line[i:i + 4]))
    if slower_than_peer:
        print("\nSLOWER THAN THE PEER (fastest r1 row vs peer_baselines.py):")
        for s in slower_than_peer:
            print("  " + s)
    if errors:
        print("\nERRORS:")
        for name, msg in errors:
            print("  %s: %s" % (name, msg[:300]))

    if args.markdown:
        with open(args.markdown, "w") as f:
            if contexts:
                c = contexts[0]
                f.write("Device %s; copy %.0f GB/s, bf16 GEMM %.1f TFLOP/s (FP8 roofline at twice that), measured in the same run.\n\n" % (
                    c.get("r1_device", "?"), float(c.get("r1_copy_GBps", 0)), float(c.get("r1_bf16_TFLOPs", 0))))
            f.write("| kernel | shape | backend | µs | GB/s | TFLOP/s | % roofline | bound | peer | peer µs | r1 / peer |\n")
            f.write("|---|---|---|---|---|---|---|---|---|---|---|\n")
            for (kernel, shape), rs in groups.items():
                for r in rs:
                    p = peers.get(r["peer"]) if r["peer"] else None
                    f.write("| %s | %s | %s | %.1f | %.0f | %.1f | %.1f | %s | %s | %s | %s |\n" % (
                        kernel, shape, r["backend"], r["us"], r["gbps"], r["tflops"], r["roof"], r["bound"],
                        r["peer"] or "", "%.1f" % p if p else "", "%.2f" % (r["us"] / p) if p else ""))
        print("\nfull table: %s" % os.path.abspath(args.markdown))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
