#!/usr/bin/env python3
"""The report of `bench/gpu.sh run`: reads what the parts left in OUT and
writes OUT/results.md (one table a section) and OUT/results.json (all of it).
A part that failed or did not run shows as such. Standard library only.

    python3 bench/gpu/report.py OUT --stage out/gpu-stage --settings "MAX_LEN=128 ..."
"""

import argparse
import json
import os
import re

GOALS = {"reviews_per_s": 20000, "vs_plain": 3.0, "p50_ms": 5.0, "fp16_same_label": 0.995}


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def json_lines(path):
    rows = []
    for line in (read(path) or "").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows


def last_json(path):
    rows = json_lines(path)
    return rows[-1] if rows else None


def fmt(x, digits=None):
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    if isinstance(x, int) and digits is None:
        return f"{x:,}"
    if digits is None:
        digits = 2 if abs(x) < 10 else 1 if abs(x) < 100 else 0
    return f"{x:,.{digits}f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--stage", default="")
    p.add_argument("--settings", default="")
    args = p.parse_args()
    out = args.out
    path = lambda *names: os.path.join(out, *names)

    status = {}
    for line in (read(path("status.tsv")) or "").splitlines():
        part, state, note, seconds = (line.split("\t") + ["", "", ""])[:4]
        status[part] = {"status": state, "note": note, "seconds": int(seconds) if seconds.isdigit() else None}

    parity_log = read(path("parity.out")) or ""
    m = re.search(r"test result: (\w+)\. (\d+) passed; (\d+) failed", parity_log)
    parity = {"status": status.get("parity", {}).get("status", "not run"),
              "passed": int(m.group(2)) if m else None, "failed": int(m.group(3)) if m else None}

    agreement = json_lines(path("agreement.out"))
    plan = last_json(path("model.out"))
    dtypes = sorted({k.split("-", 1)[1] for k in status if k.split("-", 1)[0] in ("inprocess", "plain", "forward")},
                    key=lambda d: ["fp16", "bf16", "fp32"].index(d) if d in ("fp16", "bf16", "fp32") else 9)
    inprocess, forward = {}, {}
    for d in dtypes:
        ours, theirs = last_json(path(f"inprocess-{d}.out")), last_json(path(f"plain-{d}.out"))
        inprocess[d] = {"bertstream": ours, "pytorch": theirs,
                        "ratio": ours["reviews_per_s"] / theirs["reviews_per_s"] if ours and theirs else None}
        summary = read(path(f"forward-{d}", "summary.json"))
        forward[d] = json.loads(summary) if summary else None

    # The mask's cost (bertstream, fixed shapes) and no_grad against inference_mode (PyTorch, the plan).
    extras = {}
    for part in status:
        kind, _, d = part.partition("-")
        rows = json_lines(path(f"{part}.out"))
        if kind in ("mask", "nograd") and rows:
            extras[kind] = {"dtype": d, "rows": rows}

    e2e = [r for r in json_lines(os.path.join(args.stage, "e2e-cpu.jsonl")) if r.get("system") == "bertstream"]
    e2e_cpu = {"source": "bench/run.sh on CPU (Kafka and Postgres), staged by bench/gpu.sh build",
               "efficiency": [{"model": r.get("model"), "e2e_over_model_only": r.get("efficiency")} for r in e2e]}

    fp16 = (inprocess.get("fp16") or {})
    fp16_agree = next((a for a in agreement if a.get("dtype") == "fp16" and "same_label" in a), None)
    ours16 = fp16.get("bertstream") or {}
    goals = {
        "fp16_reviews_per_s": {"value": ours16.get("reviews_per_s"), "goal": GOALS["reviews_per_s"]},
        "fp16_vs_plain_pytorch": {"value": fp16.get("ratio"), "goal": GOALS["vs_plain"]},
        "fp16_one_text_p50_ms": {"value": ours16.get("p50_ms"), "goal": GOALS["p50_ms"], "below": True},
        "fp16_same_label_as_fp32": {"value": fp16_agree and fp16_agree["same_label"], "goal": GOALS["fp16_same_label"]},
    }
    for g in goals.values():
        v = g["value"]
        g["met"] = None if v is None else (v < g["goal"] if g.get("below") else v >= g["goal"])

    results = {"machine": (read(path("machine.txt")) or "").splitlines(), "settings": args.settings,
               "status": status, "parity": parity, "agreement": agreement, "plan": plan,
               "inprocess": inprocess, "forward": forward, "mask": extras.get("mask"), "grad_mode": extras.get("nograd"),
               "e2e_cpu": e2e_cpu, "goals": goals}
    with open(path("results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)

    md = ["# bertstream on the GPU machine (bench/gpu.sh)", "", "```", *results["machine"],
          f"settings: {args.settings}", "```", "", "## Goals (fp16, in-process)", ""]
    md.append(table(["goal", "measured", "target", "met"], [
        [name.replace("_", " "), g["value"], ("< " if g.get("below") else "≥ ") + fmt(g["goal"], 3 if g["goal"] < 1 else None),
         {True: "yes", False: "NO", None: "not measured"}[g["met"]]] for name, g in goals.items()]))

    md += ["", "## Checks", ""]
    rows = [["parity tests (fp32 logits within 1e-4 of transformers)", parity["status"],
             f"{parity['passed']} passed, {parity['failed']} failed" if parity["passed"] is not None else ""]]
    for a in agreement:
        if "skipped" in a:
            rows.append([f"{a['dtype']} vs fp32", "skipped", a["skipped"]])
        else:
            rows.append([f"{a['dtype']} vs fp32 (small trained model, {a['texts']} texts)",
                         "pass" if a["pass"] else "FAIL",
                         f"same label {100 * a['same_label']:.2f} %, largest probability difference {a['max_prob_diff']:.2e}"])
    md.append(table(["check", "result", "detail"], rows))

    md += ["", "## In-process: bertstream-worker bench beside a plain PyTorch loop", "",
           "Parse, tokenize, length-grouped token-budget batches, model, result rows serialised "
           "(sinks replaced by a counter), against transformers in a plain loop (fixed batches in input "
           "order, padded to the batch's longest, inference_mode, softmax, .cpu()). One-text latency: texts "
           "sent one at a time, each waited for.", ""]
    rows = []
    for d, r in inprocess.items():
        o, t = r["bertstream"] or {}, r["pytorch"] or {}
        rows.append([d, o.get("reviews_per_s"), t.get("reviews_per_s"), r["ratio"], o.get("p50_ms"), t.get("p50_ms"),
                     o.get("mean_batch"), fmt(o.get("padding"), 3), fmt(t.get("padding"), 3),
                     fmt(o.get("model_busy"), 2), fmt(o.get("source_busy"), 2)])
    md.append(table(["dtype", "bertstream reviews/s", "PyTorch loop reviews/s", "ratio", "bertstream p50 ms (1 text)",
                     "PyTorch p50 ms", "mean batch", "padding (bertstream)", "padding (PyTorch)", "model busy",
                     "source busy"], rows))
    eff = ", ".join(f"{e['model']} {fmt(e['e2e_over_model_only'], 3)}" for e in e2e_cpu["efficiency"]) or \
        "not staged (run bench/run.sh on the build machine before bench/gpu.sh build)"
    md += ["", "Kafka and Postgres cannot run on this machine, so this is the in-process figure only. End to end, "
           f"expect it times the pipeline efficiency (end to end / model only) measured on CPU by bench/run.sh: {eff}. "
           "That efficiency was measured on CPU, not here."]

    md += ["", "## Model forward on real token lengths: bertstream beside transformers", ""]
    if plan:
        md.append(f"Plan: {plan['texts']} texts, mean {plan['mean_len']:.1f} tokens (max {plan['max_len']}), "
                  f"{plan['batches']} batches, padding {plan['padding']:.3f}.")
        md.append("")
    rows = []
    for d, summary in forward.items():
        for s in summary or []:
            rows.append([d, s["batch"], s["bertstream_seq_per_s"], s["peer_seq_per_s"], fmt(s["ratio"], 3),
                         s["bertstream_median_s"] and 1000 * s["bertstream_median_s"],
                         s["peer_median_s"] and 1000 * s["peer_median_s"], fmt(s.get("padding"), 3),
                         f"{s.get('sdp_masked', '?')} / {s.get('sdp_unmasked', '?')}"])
    md.append(table(["dtype", "batch", "bertstream seq/s", "PyTorch seq/s", "ratio", "bertstream ms/batch (p50)",
                     "PyTorch ms/batch (p50)", "padding", "attention kernel (masked / unmasked)"], rows))

    mask = extras.get("mask")
    if mask:
        md += ["", f"## What an attention mask costs bertstream ({mask['dtype']}, fixed shapes, all-ones mask against none)", ""]
        plain = {(r["batch"], r["seq_len"]): r for r in mask["rows"] if not r.get("masked_batches")}
        rows = [[f"{r['batch']}×{r['seq_len']}", plain.get((r["batch"], r["seq_len"]), {}).get("seq_per_s"),
                 r["seq_per_s"], f"{r.get('sdp_masked')} / {r.get('sdp_unmasked')}"]
                for r in mask["rows"] if r.get("masked_batches")]
        md.append(table(["shape", "no mask seq/s", "mask seq/s", "attention kernel (masked / unmasked)"], rows))
    nograd = extras.get("nograd")
    if nograd:
        d = nograd["dtype"]
        md += ["", f"## PyTorch under no_grad against inference_mode ({d}, the plan's batches)", "",
               "bertstream runs under no_grad (tch 0.24 has no inference-mode guard): this is what inference "
               "mode is worth to PyTorch on the same batches.", ""]
        inference = {s["batch"]: s for s in forward.get(d) or []}
        md.append(table(["batch", "inference_mode seq/s", "no_grad seq/s", "inference_mode ms/batch", "no_grad ms/batch"], [
            [r["batch"], inference.get(r["batch"], {}).get("peer_seq_per_s"), r["seq_per_s"],
             (inference.get(r["batch"], {}).get("peer_median_s") or 0) * 1000 or None, 1000 * r["median_s"]]
            for r in nograd["rows"]]))

    md += ["", "## Parts", ""]
    md.append(table(["part", "status", "note", "seconds"],
                    [[k, v["status"], v["note"], v["seconds"]] for k, v in status.items()]))
    with open(path("results.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
