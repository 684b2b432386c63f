"""The table of bench/models.sh: per configuration, its figures as ratios
against the plain stream of the same round (rounds in file order, each
starting with `plain`), then the mean over rounds."""
import json
import statistics
import sys

runs = [json.loads(line) for line in open(sys.argv[1])]
rounds, current = [], None
for run in runs:
    if run["label"] == "plain":
        current = {}
        rounds.append(current)
    current[run["label"]] = run

def mean(values):
    values = [v for v in values if v is not None]
    return round(statistics.mean(values), 2) if values else None

rows = []
for label in ["plain", "shadow10", "shadow100", "swap", "backfill"]:
    pairs = [(r["plain"], r[label]) for r in rounds if label in r]
    throughput = mean([x["reviews_per_s"] / p["reviews_per_s"] for p, x in pairs])
    p50 = mean([x.get("p50_ms", 0) / max(p.get("p50_ms", 1), 1) for p, x in pairs])
    p99 = mean([x.get("p99_ms", 0) / max(p.get("p99_ms", 1), 1) for p, x in pairs])
    extra = ""
    if label == "swap":
        extra = f"longest gap at the swap: {mean([x['swap_stall_batches'] for _, x in pairs])} median batch gaps " \
                f"({mean([x['swap_gap_ms'] for _, x in pairs])} ms vs {mean([x['median_gap_ms'] for _, x in pairs])} ms)"
    if label == "backfill":
        extra = f"{mean([x.get('backfilled_during_paced', 0) for _, x in pairs])} reviews backfilled during the paced phase"
    absolute = mean([x["reviews_per_s"] for _, x in pairs])
    rows.append(f"| {label} | {absolute} | {throughput} | {p50} | {p99} | {extra} |")

print(f"rounds: {len(rounds)}; paced rate {rounds[0]['plain'].get('rate')} reviews/s\n")
print("| configuration | backlog reviews/s | throughput / plain | paced p50 / plain | paced p99 / plain | |")
print("|---|---|---|---|---|---|")
print("\n".join(rows))
