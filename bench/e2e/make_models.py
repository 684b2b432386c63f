"""Random-weight model directories for the benchmarks, in the model directory
format (docs: /work/shared/DESIGN.md "Model directory"): a BERT-base-shaped one
(12 layers, hidden 768, vocab 21128) and a compact one (4 layers, hidden 256),
both with the real bert-base-chinese WordPiece vocabulary (shipped in the PyPI
package cn-clip: `pip install cn-clip --no-deps`, cn_clip/clip/vocab.txt).

    python bench/e2e/make_models.py [OUT_DIR]      # default .cache/bench-models

Writes OUT_DIR/{base,compact}/ unless they exist. Labels -1, 0, 1.
"""
import json
import os
import sys
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

MAX_SEQ_LEN = 128
SHAPES = {
    "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
    "compact": dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4, intermediate_size=1024),
}


def vocab_path() -> Path:
    import cn_clip  # noqa: PLC0415  (only for its data file)

    return Path(cn_clip.__file__).parent / "clip" / "vocab.txt"


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/bench-models")
    labels = ["-1", "0", "1"]
    for name, shape in SHAPES.items():
        target = out / name
        if (target / "model.safetensors").exists():
            continue
        target.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=21128,
            max_position_embeddings=512,
            id2label=dict(enumerate(labels)),
            label2id={l: i for i, l in enumerate(labels)},
            **shape,
        )
        BertForSequenceClassification(config).eval().save_pretrained(target)
        tokenizer = BertTokenizerFast(vocab=str(vocab_path()), do_lower_case=True)
        tokenizer.model_max_length = MAX_SEQ_LEN
        tokenizer.save_pretrained(target)
        (target / "bertstream.json").write_text(json.dumps({"max_seq_len": MAX_SEQ_LEN}) + "\n")
        print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
