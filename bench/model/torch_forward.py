#!/usr/bin/env python3
"""Forward throughput of transformers' BertForSequenceClassification: the
PyTorch counterpart of `model/examples/forward_bench.rs`.

Same model (random weights of a shape, or a model directory's with
`--model`), same batches (fixed shapes of random ids without padding, or
`--plan`: batches of real token lengths, padded and masked), same timing
(warm-up; back to back with one wait at the end for sequences/s, then one by
one for the median), same JSON line per shape or plan batch size, so that
`bench/model/run.sh` can set them side by side.

    python bench/model/torch_forward.py --device cpu --threads 2 \
        --shapes 32x64,32x128 --warmup 1 --iters 5

Two helpers for a run on real lengths (bench/gpu.sh uses them):

    # a random-weight model directory that both sides load (same weights)
    python bench/model/torch_forward.py --save DIR --vocab-file vocab.txt [shape flags]
    # batches of the texts' token lengths (one batch a line), grouped by
    # length as the worker's batcher groups them (both at once: --save and --make-plan)
    python bench/model/torch_forward.py --make-plan PLAN --model DIR --texts texts.txt --batches 1,2,4
"""

import argparse
import itertools
import json
import math
import os
import random
import shutil
import statistics
import time

import torch
from torch import nn
from torch.nn import functional as F


def parse_shapes(spec):
    shapes = []
    for part in filter(None, (s.strip() for s in spec.split(","))):
        batch, _, seq_len = part.lower().partition("x")
        shapes.append((int(batch), int(seq_len)))
    return shapes


class PlainBert(nn.Module):
    """BERT for sequence classification in plain PyTorch, computed as
    transformers' sdpa path does (no mask when every token is real): the
    fallback peer where transformers is not installed (e.g. a bare GPU host)."""

    def __init__(self, a):
        super().__init__()
        h, i = a.hidden, a.intermediate
        self.heads = a.heads
        self.word, self.pos, self.token_type = nn.Embedding(a.vocab, h), nn.Embedding(512, h), nn.Embedding(2, h)
        self.emb_norm = nn.LayerNorm(h, eps=1e-12)
        self.layers = nn.ModuleList(nn.ModuleDict({
            "q": nn.Linear(h, h), "k": nn.Linear(h, h), "v": nn.Linear(h, h), "o": nn.Linear(h, h),
            "norm1": nn.LayerNorm(h, eps=1e-12), "up": nn.Linear(h, i), "down": nn.Linear(i, h),
            "norm2": nn.LayerNorm(h, eps=1e-12),
        }) for _ in range(a.layers))
        self.pooler, self.classifier = nn.Linear(h, h), nn.Linear(h, a.labels)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, input_ids, attention_mask):
        b, s = input_ids.shape
        pos = torch.arange(s, device=input_ids.device)
        x = self.emb_norm(self.word(input_ids) + self.pos(pos) + self.token_type.weight[0])
        mask = None if bool(attention_mask.all()) else attention_mask.bool()[:, None, None, :]
        split = lambda t: t.view(b, s, self.heads, -1).transpose(1, 2)
        for l in self.layers:
            ctx = F.scaled_dot_product_attention(split(l["q"](x)), split(l["k"](x)), split(l["v"](x)), attn_mask=mask)
            x = l["norm1"](l["o"](ctx.transpose(1, 2).reshape(b, s, -1)) + x)
            x = l["norm2"](l["down"](F.gelu(l["up"](x))) + x)
        return self.classifier(torch.tanh(self.pooler(x[:, 0])))


def cpu_time():
    """CPU time of the whole process (all threads, user + system), at the
    same tick resolution as the Rust side's /proc/self/stat."""
    t = os.times()
    return t.user + t.system


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def build_model(args):
    """transformers' BertForSequenceClassification (random, or --model's), or
    PlainBert; returns (model, impl name)."""
    use_plain = args.impl == "plain"
    if args.impl == "auto":
        try:
            import transformers  # noqa: F401
        except ImportError:
            use_plain = True
    if use_plain:
        if args.model:
            raise SystemExit("--model needs transformers")
        return PlainBert(args), "pytorch-plain"
    from transformers import BertConfig, BertForSequenceClassification

    if args.model:
        return BertForSequenceClassification.from_pretrained(args.model, attn_implementation=args.attn), "pytorch"
    config = BertConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=args.intermediate,
        num_labels=args.labels,
        attn_implementation=args.attn,
    )
    return BertForSequenceClassification(config), "pytorch"


def save_model(args):
    """A random-weight model directory the worker and transformers both load."""
    model, impl = build_model(args)
    if impl != "pytorch":
        raise SystemExit("--save needs transformers")
    labels = [str(i) for i in range(-1, args.labels - 1)] if args.labels == 3 else [str(i) for i in range(args.labels)]
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {l: i for i, l in enumerate(labels)}
    model.save_pretrained(args.save)
    shutil.copy(args.vocab_file, os.path.join(args.save, "vocab.txt"))
    with open(os.path.join(args.save, "bertstream.json"), "w", encoding="utf-8") as f:
        json.dump({"max_seq_len": args.max_len}, f)


def tokenizer(model_dir):
    """BERT tokenization of the model's vocab.txt: transformers' fast tokenizer, else the tokenizers package's."""
    vocab = os.path.join(model_dir, "vocab.txt")
    try:
        from transformers import BertTokenizerFast

        tok = BertTokenizerFast(vocab_file=vocab)
        return lambda texts, max_len: [len(ids) for ids in tok(texts, truncation=True, max_length=max_len)["input_ids"]]
    except ImportError:
        from tokenizers import BertWordPieceTokenizer

        tok = BertWordPieceTokenizer(vocab)
        tok.enable_truncation(max_len)
        return lambda texts, max_len: [len(e.ids) for e in tok.encode_batch(texts)]


def max_seq_len(model_dir):
    try:
        with open(os.path.join(model_dir, "bertstream.json"), encoding="utf-8") as f:
            return int(json.load(f)["max_seq_len"])
    except (OSError, KeyError, ValueError):
        return 512


def make_plan(args):
    """Batches of the texts' token lengths, `--plan-seqs` sequences (at least
    `--iters` batches) per batch size: windows of 8 batches' worth of texts
    in a seeded random order, each sorted by length and cut into batches, as
    the worker's batcher cuts a backlog (its window holds 8 batches)."""
    with open(args.texts, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f if line.strip()]
    lengths = tokenizer(args.model)(texts, max_seq_len(args.model))
    rng = random.Random(args.seed)
    lines = []
    for size in (int(b) for b in args.batches.split(",") if b.strip()):
        order = lengths[:]
        rng.shuffle(order)
        stream = itertools.cycle(order)
        need = max(args.iters, math.ceil(args.plan_seqs / size))
        batches = []
        while len(batches) < need:
            window = sorted(next(stream) for _ in range(8 * size))
            batches += [window[i:i + size] for i in range(0, len(window), size)]
        lines += [" ".join(map(str, b)) for b in batches[:need]]
    with open(args.make_plan, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    padded = sum(len(l.split()) * max(map(int, l.split())) for l in lines)
    print(json.dumps({"plan": args.make_plan, "texts": len(texts), "batches": len(lines),
                      "mean_len": sum(lengths) / len(lengths), "max_len": max(lengths),
                      "padding": 1 - sum(sum(map(int, l.split())) for l in lines) / padded}))


def read_plan(path):
    """Batches of a plan grouped by size, sizes in the order they first appear."""
    groups = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                lengths = [int(x) for x in line.split()]
                groups.setdefault(len(lengths), []).append(lengths)
    return list(groups.items())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--intermediate", type=int, default=3072)
    p.add_argument("--vocab", type=int, default=21128)
    p.add_argument("--labels", type=int, default=3)
    p.add_argument("--model", help="a model directory (weights and shape) instead of random weights")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    p.add_argument("--fp16", action="store_true", help="the same as --dtype fp16")
    p.add_argument("--threads", type=int, help="torch.set_num_threads; default: torch's own choice")
    p.add_argument("--shapes", default="32x64,32x128", help="comma-separated BATCHxSEQ_LEN")
    p.add_argument("--plan", help="batches of real token lengths (one batch a line) instead of --shapes")
    p.add_argument("--mask", action="store_true", help="fixed shapes get an all-ones attention mask")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"],
                   help="transformers attention implementation (sdpa is its default)")
    p.add_argument("--impl", default="auto", choices=["auto", "transformers", "plain"],
                   help="auto: transformers if importable, else the plain-PyTorch BERT in this file")
    p.add_argument("--grad-mode", default="inference", choices=["inference", "no_grad"],
                   help="torch.inference_mode (default) or torch.no_grad, as bertstream runs")
    p.add_argument("--save", metavar="DIR", help="write a random-weight model directory and exit")
    p.add_argument("--vocab-file", help="with --save: the vocab.txt to put in it")
    p.add_argument("--max-len", type=int, default=512, help="with --save: the model's max sequence length")
    p.add_argument("--make-plan", metavar="PLAN", help="write a plan from --texts tokenized by --model, and exit")
    p.add_argument("--texts", help="with --make-plan: one text a line")
    p.add_argument("--batches", default="1,2,4,8,16,32,64,128,256", help="with --make-plan: batch sizes")
    p.add_argument("--plan-seqs", type=int, default=512, help="with --make-plan: sequences per batch size")
    args = p.parse_args()
    if args.fp16:
        args.dtype = "fp16"

    torch.manual_seed(args.seed)
    if args.save or args.make_plan:
        if args.save:
            save_model(args)
            args.model = args.model or args.save
        if args.make_plan:
            make_plan(args)
        return None
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.dtype == "fp16" and device.type != "cuda":
        p.error("fp16 needs a CUDA device")

    model, impl = build_model(args)
    model = model.eval().to(device=device, dtype=DTYPES[args.dtype])
    config = getattr(model, "config", None)
    shape = {k: getattr(config, a) if config else getattr(args, k) for k, a in
             [("layers", "num_hidden_layers"), ("hidden", "hidden_size"), ("heads", "num_attention_heads"),
              ("intermediate", "intermediate_size"), ("vocab", "vocab_size")]}

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def plan_input(lengths):
        width = max(lengths)
        ids = torch.zeros(len(lengths), width, dtype=torch.int64)
        mask = torch.zeros(len(lengths), width, dtype=torch.int64)
        for row, n in enumerate(lengths):
            ids[row, :n] = torch.randint(1, shape["vocab"], (n,))
            mask[row, :n] = 1
        return ids.to(device), mask.to(device), sum(lengths), len(lengths) * width

    if args.plan:
        runs = [(size, "real", [plan_input(b) for b in batches]) for size, batches in read_plan(args.plan)]
    else:
        runs = []
        for batch, seq_len in parse_shapes(args.shapes):
            ids = torch.randint(shape["vocab"], (batch, seq_len), dtype=torch.int64, device=device)
            # transformers drops an all-ones mask itself; without --mask none is passed, as bertstream does.
            mask = torch.ones(batch, seq_len, dtype=torch.int64, device=device) if args.mask else None
            runs.append((batch, seq_len, [(ids, mask, batch * seq_len, batch * seq_len)]))

    grad_mode = torch.inference_mode if args.grad_mode == "inference" else torch.no_grad
    with grad_mode():
        for batch, seq_len, inputs in runs:
            run = lambda i: model(input_ids=inputs[i % len(inputs)][0], attention_mask=inputs[i % len(inputs)][1])
            # Every batch once at least: a shape's first pass is slow (kernel choice, oneDNN primitives).
            for i in range(max(args.warmup, len(inputs))):
                run(i)
            n = max(args.iters, len(inputs))
            rows = sum(inputs[i % len(inputs)][0].shape[0] for i in range(n))
            sync()
            start = time.perf_counter()
            for i in range(n):
                run(i)
            sync()
            seq_per_s = rows / (time.perf_counter() - start)
            seconds, cpu_seconds = [], []
            for i in range(n):
                cpu_start = cpu_time()
                start = time.perf_counter()
                run(i)
                sync()
                seconds.append(time.perf_counter() - start)
                cpu_seconds.append(cpu_time() - cpu_start)
            tokens, padded = sum(x[2] for x in inputs), sum(x[3] for x in inputs)
            print(json.dumps({
                "impl": impl,
                "device": str(device) if device.type == "cpu" else f"cuda:{device.index or 0}",
                "dtype": args.dtype,
                "threads": torch.get_num_threads(),
                **shape,
                "batch": batch,
                "seq_len": seq_len,
                "batches": len(inputs),
                "mean_len": tokens / sum(x[0].shape[0] for x in inputs),
                "padding": 1 - tokens / padded,
                "warmup": args.warmup,
                "iters": n,
                "median_s": statistics.median(seconds),
                "min_s": min(seconds),
                "seq_per_s": seq_per_s,
                "cpu_s": statistics.median(cpu_seconds),
                "attn": args.attn if impl == "pytorch" else "sdpa",
                "grad_mode": args.grad_mode,
                "torch": torch.__version__,
            }, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
