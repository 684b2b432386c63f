#!/usr/bin/env python3
"""Sets the JSON lines of `forward_bench` (bertstream) and `torch_forward.py`
(PyTorch) side by side: one row per device, dtype and shape, with
- the median over rounds of each side's sequences/s and their ratio
  bertstream / PyTorch;
- the paired ratio: the median over rounds of bertstream / PyTorch within a
  round (the two ran back to back), robust to load that comes and goes;
- the CPU-time ratio: CPU seconds per pass PyTorch / bertstream (less
  sensitive to other load; at --threads > 1 it counts OpenMP spinning too).

    python3 bench/model/summarize.py raw.jsonl [--markdown] [--json summary.json]

Lines that are not JSON objects with `impl` and `seq_per_s` are ignored.
Standard library only, so it runs wherever python3 does.
"""

import argparse
import json
import statistics
import sys
from collections import defaultdict


def load(paths):
    rows = []
    for path in paths:
        with (sys.stdin if path == "-" else open(path, encoding="utf-8")) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if "impl" in row and "seq_per_s" in row:
                    rows.append(row)
    return rows


def summarize(rows):
    runs, cpu, latency, extra = defaultdict(list), defaultdict(list), defaultdict(list), {}
    for r in rows:
        key = (r.get("device", "cpu"), r.get("dtype", "fp32"), r["batch"], r["seq_len"])
        runs[(key, r["impl"])].append(r["seq_per_s"])
        latency[(key, r["impl"])].append(r["median_s"])
        if r["impl"] == "bertstream":
            extra[key] = {k: r[k] for k in ("padding", "mean_len", "sdp_masked", "sdp_unmasked") if k in r}
        if r.get("cpu_s"):
            cpu[(key, r["impl"])].append(r["cpu_s"])
    # seq_len is "real" for batches of real lengths (a plan).
    keys = sorted({k for k, _ in runs}, key=lambda k: (k[0], k[1], str(k[3]), k[2]))
    out = []
    for key in keys:
        ours = runs.get((key, "bertstream"), [])
        peers = [(impl, v) for (k, impl), v in runs.items() if k == key and impl != "bertstream"]
        peer_impl, theirs = peers[0] if peers else ("pytorch", [])
        ours_s = statistics.median(ours) if ours else None
        theirs_s = statistics.median(theirs) if theirs else None
        ours_cpu, theirs_cpu = cpu.get((key, "bertstream")), cpu.get((key, peer_impl))
        out.append({
            "device": key[0], "dtype": key[1], "batch": key[2], "seq_len": key[3],
            "bertstream_seq_per_s": ours_s, "bertstream_runs": ours,
            "peer": peer_impl, "peer_seq_per_s": theirs_s, "peer_runs": theirs,
            "ratio": ours_s / theirs_s if ours_s and theirs_s else None,
            # Per batch, each pass waited for (at batch 1: one text's latency), median over rounds.
            "bertstream_median_s": statistics.median(latency[(key, "bertstream")]) if ours else None,
            "peer_median_s": statistics.median(latency[(key, peer_impl)]) if theirs else None,
            **extra.get(key, {}),
            # Round by round (the i-th run of each side ran back to back): the median of
            # bertstream / PyTorch within a round, robust to load that comes and goes.
            "paired_ratio": statistics.median(a / b for a, b in zip(ours, theirs)) if ours and theirs else None,
            # PyTorch's CPU seconds per pass over bertstream's: > 1 when bertstream costs less CPU.
            "cpu_ratio": statistics.median(theirs_cpu) / statistics.median(ours_cpu) if ours_cpu and theirs_cpu else None,
        })
    return out


def fmt(x, digits=None):
    """Three significant figures or so (1.93, 17.4, 348, 12,345), or `digits` decimals."""
    if x is None:
        return "—"
    if digits is None:
        digits = 2 if abs(x) < 10 else 1 if abs(x) < 100 else 0
    return f"{x:,.{digits}f}"


def table(summary, markdown):
    header = ["device", "dtype", "shape (batch×len)", "bertstream seq/s", "PyTorch seq/s", "ratio",
              "paired ratio", "CPU-time ratio"]
    lines = []
    for s in summary:
        peer = fmt(s["peer_seq_per_s"]) + ("" if s["peer"] == "pytorch" else f" ({s['peer']})")
        lines.append([s["device"], s["dtype"], f"{s['batch']}×{s['seq_len']}",
                      fmt(s["bertstream_seq_per_s"]), peer, fmt(s["ratio"], 3),
                      fmt(s["paired_ratio"], 3), fmt(s["cpu_ratio"], 3)])
    if markdown:
        rows = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        rows += ["| " + " | ".join(l) + " |" for l in lines]
        return "\n".join(rows)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *lines])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", help="JSON-lines files ('-' for stdin)")
    p.add_argument("--markdown", action="store_true", help="a markdown table instead of aligned text")
    p.add_argument("--json", metavar="PATH", help="also write the summary as JSON")
    args = p.parse_args()
    summary = summarize(load(args.files))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
    print(table(summary, args.markdown))


if __name__ == "__main__":
    main()
