#!/usr/bin/env python3
"""The plain PyTorch loop that `bertstream-worker bench` is set beside: the
same texts and model directory, tokenized by transformers' BertTokenizerFast
(else the tokenizers package's BERT WordPiece), a fixed batch size in input
order, each batch padded to its longest text, the forward pass under
`torch.inference_mode`, softmax, `.cpu()`. Prints one JSON line: reviews/s
over `--reviews` texts, and one text's latency (batch 1) over
`--latency-samples` texts.

    python bench/gpu/plain_loop.py --model DIR --texts texts.txt --device cuda --dtype fp16
"""

import argparse
import json
import os
import statistics
import time

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def load_tokenizer(model_dir, max_len):
    """texts -> (input_ids, attention_mask) int64 tensors, padded to the longest."""
    vocab = os.path.join(model_dir, "vocab.txt")
    try:
        from transformers import BertTokenizerFast

        tok = BertTokenizerFast(vocab_file=vocab)

        def encode(texts):
            out = tok(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
            return out["input_ids"], out["attention_mask"]
    except ImportError:
        from tokenizers import BertWordPieceTokenizer

        tok = BertWordPieceTokenizer(vocab)
        tok.enable_truncation(max_len)
        tok.enable_padding()

        def encode(texts):
            out = tok.encode_batch(texts)
            return torch.tensor([e.ids for e in out]), torch.tensor([e.attention_mask for e in out])
    return encode


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model directory (config.json, model.safetensors, vocab.txt)")
    p.add_argument("--texts", required=True, help="one text a line")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--reviews", type=int, help="texts to time, cycling through the file (default: each once)")
    p.add_argument("--warmup", type=int, default=1024, help="texts run before timing")
    p.add_argument("--latency-samples", type=int, default=200)
    p.add_argument("--threads", type=int)
    args = p.parse_args()

    from transformers import BertForSequenceClassification

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    with open(args.texts, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f if line.strip()]
    try:
        with open(os.path.join(args.model, "bertstream.json"), encoding="utf-8") as f:
            max_len = int(json.load(f)["max_seq_len"])
    except (OSError, KeyError, ValueError):
        max_len = 512
    encode = load_tokenizer(args.model, max_len)
    model = BertForSequenceClassification.from_pretrained(args.model).eval().to(device=device, dtype=DTYPES[args.dtype])

    def cycle(n):
        return [texts[i % len(texts)] for i in range(n)]

    def run(batch):
        ids, mask = encode(batch)
        probabilities = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.softmax(-1).cpu()
        return probabilities, int(mask.sum()), mask.numel()

    with torch.inference_mode():
        warm = cycle(args.warmup)
        for i in range(0, len(warm), args.batch_size):
            run(warm[i:i + args.batch_size])
        timed = cycle(args.reviews or len(texts))
        tokens = padded = 0
        start = time.perf_counter()
        for i in range(0, len(timed), args.batch_size):
            _, t, n = run(timed[i:i + args.batch_size])
            tokens, padded = tokens + t, padded + n
        seconds = time.perf_counter() - start
        latencies = []
        for text in cycle(args.latency_samples):
            start = time.perf_counter()
            run([text])
            latencies.append((time.perf_counter() - start) * 1000)
    latencies.sort()
    print(json.dumps({
        "impl": "pytorch-loop",
        "device": str(device),
        "dtype": args.dtype,
        "texts": len(texts),
        "reviews": len(timed),
        "seconds": seconds,
        "reviews_per_s": len(timed) / seconds,
        "batch_size": args.batch_size,
        "padding": 1 - tokens / padded,
        "latency_samples": len(latencies),
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p99_ms": latencies[round((len(latencies) - 1) * 0.99)] if latencies else None,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }, sort_keys=True))


if __name__ == "__main__":
    main()
