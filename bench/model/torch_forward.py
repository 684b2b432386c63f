#!/usr/bin/env python3
"""Forward throughput of transformers' BertForSequenceClassification: the
PyTorch counterpart of `model/examples/forward_bench.rs`.

Same model shape, same random token ids with a full attention mask, same
iteration scheme (warm-up, timed passes, median), same JSON line per
`batch x seq_len` shape, so that `bench/model/run.sh` can set them side by side.

    python bench/model/torch_forward.py --device cpu --threads 2 \
        --shapes 32x64,32x128 --warmup 1 --iters 5
"""

import argparse
import json
import os
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


def build_model(args):
    """transformers' BertForSequenceClassification, or PlainBert; returns (model, impl name)."""
    use_plain = args.impl == "plain"
    if args.impl == "auto":
        try:
            import transformers  # noqa: F401
        except ImportError:
            use_plain = True
    if use_plain:
        return PlainBert(args), "pytorch-plain"
    from transformers import BertConfig, BertForSequenceClassification

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


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--intermediate", type=int, default=3072)
    p.add_argument("--vocab", type=int, default=21128)
    p.add_argument("--labels", type=int, default=3)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--fp16", action="store_true", help="half precision (CUDA only)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads; default: torch's own choice")
    p.add_argument("--shapes", default="32x64,32x128", help="comma-separated BATCHxSEQ_LEN")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"],
                   help="transformers attention implementation (sdpa is its default)")
    p.add_argument("--impl", default="auto", choices=["auto", "transformers", "plain"],
                   help="auto: transformers if importable, else the plain-PyTorch BERT in this file")
    args = p.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.fp16 and device.type != "cuda":
        p.error("--fp16 needs a CUDA device")
    torch.manual_seed(args.seed)

    model, impl = build_model(args)
    model = model.eval().to(device)
    if args.fp16:
        model = model.half()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.inference_mode():
        for batch, seq_len in parse_shapes(args.shapes):
            ids = torch.randint(args.vocab, (batch, seq_len), dtype=torch.int64, device=device)
            mask = torch.ones(batch, seq_len, dtype=torch.int64, device=device)
            for _ in range(args.warmup):
                model(input_ids=ids, attention_mask=mask)
            sync()
            seconds, cpu_seconds = [], []
            for _ in range(args.iters):
                cpu_start = cpu_time()
                start = time.perf_counter()
                model(input_ids=ids, attention_mask=mask)
                sync()
                seconds.append(time.perf_counter() - start)
                cpu_seconds.append(cpu_time() - cpu_start)
            median_s = statistics.median(seconds)
            print(json.dumps({
                "impl": impl,
                "device": str(device) if device.type == "cpu" else f"cuda:{device.index or 0}",
                "dtype": "fp16" if args.fp16 else "fp32",
                "threads": torch.get_num_threads(),
                "layers": args.layers,
                "hidden": args.hidden,
                "heads": args.heads,
                "intermediate": args.intermediate,
                "vocab": args.vocab,
                "batch": batch,
                "seq_len": seq_len,
                "warmup": args.warmup,
                "iters": args.iters,
                "median_s": median_s,
                "min_s": min(seconds),
                "seq_per_s": batch / median_s,
                "cpu_s": statistics.median(cpu_seconds),
                "attn": args.attn if impl == "pytorch" else "sdpa",
                "torch": torch.__version__,
            }, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
