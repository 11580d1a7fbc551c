"""GPU benchmark of a Gemma-3-1B-shaped LoRA regression student: bf16 throughput at 512 tokens and a bf16-vs-fp32 check.

    python bench/gpu_student.py                # on a CUDA machine: the real Gemma-3-1B shape, batch 1/8/32/128
    python bench/gpu_student.py --tiny         # anywhere (CPU): a tiny config, end to end, for tests

The model is built from its config with random weights (no download): the figures measure compute, not quality.
Steps: LoRA (q/k/v/o_proj, r16, adapter weights randomised so it matters) → one timed LoRA training step size →
merge the adapter → fp32 outputs on check inputs → convert to bf16 → the same outputs again (max abs diff,
correlation) → articles/s per batch size with torch.cuda.synchronize() around each timing. Writes
`bench/results/gpu_student_<device>.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.student.backbone import lora_model  # noqa: E402
from models.training.student import regression_loss  # noqa: E402

N_DIMS = 8  # sustainability v1 dimensions
# google/gemma-3-1b-pt config.json shape (text model); vocabulary and rope as published.
GEMMA3_1B = dict(vocab_size=262144, hidden_size=1152, intermediate_size=6912, num_hidden_layers=26,
                 num_attention_heads=4, num_key_value_heads=1, head_dim=256, max_position_embeddings=32768,
                 query_pre_attn_scalar=256, sliding_window=512)
TINY = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, head_dim=32, max_position_embeddings=256, query_pre_attn_scalar=32,
            sliding_window=32)


def build(shape: dict[str, Any], device: torch.device, seed: int = 0) -> torch.nn.Module:
    """A Gemma-3 text regression model from a config (random init, fp32, built directly on `device`)."""
    from transformers import AutoModelForSequenceClassification, Gemma3TextConfig

    torch.manual_seed(seed)
    cfg = Gemma3TextConfig(**shape, pad_token_id=0, eos_token_id=1, bos_token_id=2, num_labels=N_DIMS,
                           problem_type="regression")
    with torch.device(device):
        model = AutoModelForSequenceClassification.from_config(cfg, dtype=torch.float32)
    return model.eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def random_batch(n: int, tokens: int, vocab: int, device: torch.device, ragged: bool = False,
                 seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token ids starting with BOS; `ragged` right-pads rows to varied lengths (exercises last-token pooling)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (n, tokens), generator=g)
    ids[:, 0] = 2
    mask = torch.ones_like(ids)
    if ragged:
        for i in range(n):
            length = int(torch.randint(tokens // 4, tokens + 1, (1,), generator=g))
            ids[i, length:] = 0
            mask[i, length:] = 0
    return ids.to(device), mask.to(device)


@torch.inference_mode()
def outputs(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, batch: int) -> np.ndarray:
    rows = [model(input_ids=ids[i : i + batch], attention_mask=mask[i : i + batch]).logits.float().cpu()
            for i in range(0, len(ids), batch)]
    return torch.cat(rows).numpy()


def train_step_rate(model: torch.nn.Module, device: torch.device, tokens: int, vocab: int, batch: int,
                    steps: int) -> float:
    """Articles/s of LoRA training steps (fp32 master weights, bf16 autocast on CUDA)."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    ids, mask = random_batch(batch, tokens, vocab, device, seed=3)
    target = torch.zeros(batch, N_DIMS, device=device)
    model.train()
    elapsed = 0.0
    for i in range(steps + 1):  # the first step warms up kernels and the allocator
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(input_ids=ids, attention_mask=mask).logits
        loss = regression_loss(logits.float(), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if i:
            elapsed += time.perf_counter() - t0
    model.eval()
    del opt
    return batch * steps / elapsed


@torch.inference_mode()
def throughput(model: torch.nn.Module, device: torch.device, tokens: int, vocab: int, batch: int,
               repeats: int) -> dict[str, Any]:
    """Articles/s for full-length inputs at one batch size (2 warm-up passes, then `repeats` timed passes)."""
    ids, mask = random_batch(batch, tokens, vocab, device, seed=4)
    try:
        for _ in range(2):
            model(input_ids=ids, attention_mask=mask)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(input_ids=ids, attention_mask=mask)
        sync(device)
        elapsed = time.perf_counter() - t0
    except torch.OutOfMemoryError:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return {"batch_size": batch, "error": "out of memory"}
    out = {"batch_size": batch, "articles_per_s": round(batch * repeats / elapsed, 2),
           "ms_per_batch": round(1000 * elapsed / repeats, 2)}
    if device.type == "cuda":
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def device_tag(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu-{platform.machine()}"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny config on whatever device is present (CPU smoke run)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for the JSON figures")
    ap.add_argument("--batch-sizes", default=None, help="comma list (default 1,8,32,128; tiny 1,2,4)")
    ap.add_argument("--tokens", type=int, default=None, help="tokens per article (default 512; tiny 64)")
    ap.add_argument("--repeats", type=int, default=None, help="timed passes per batch size (default 5; tiny 2)")
    ap.add_argument("--check-rows", type=int, default=None, help="rows of the bf16-vs-fp32 check (default 64)")
    args = ap.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.tiny:
        sys.exit("bench/gpu_student.py: no CUDA GPU here; run it on a GPU machine, "
                 "or pass --tiny for the CPU smoke run")
    if device.type == "cpu":
        torch.set_num_threads(min(2, torch.get_num_threads()))
    shape = TINY if args.tiny else GEMMA3_1B
    tokens = args.tokens or (64 if args.tiny else 512)
    sizes = [int(b) for b in (args.batch_sizes or ("1,2,4" if args.tiny else "1,8,32,128")).split(",")]
    repeats = args.repeats or (2 if args.tiny else 5)
    check_rows = args.check_rows or (8 if args.tiny else 64)
    vocab = shape["vocab_size"]
    t_start = time.perf_counter()

    model = build(shape, device)
    n_params = sum(p.numel() for p in model.parameters())
    peft = lora_model(model, "gemma3_text", r=16, alpha=32, dropout=0.0, targets=None)
    torch.manual_seed(5)
    with torch.no_grad():  # LoRA B starts at zero; randomise it so merging has something to merge
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.02)
    n_trainable = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    train_batch = 2 if args.tiny else 8
    train_rate = train_step_rate(peft, device, tokens, vocab, train_batch, steps=2 if args.tiny else 5)

    check_ids, check_mask = random_batch(check_rows, tokens, vocab, device, ragged=True, seed=2)
    unmerged = outputs(peft, check_ids, check_mask, batch=8)
    merged = peft.merge_and_unload().eval()
    fp32 = outputs(merged, check_ids, check_mask, batch=8)
    single = np.concatenate([outputs(merged, check_ids[i : i + 1, : int(check_mask[i].sum())],
                                     check_mask[i : i + 1, : int(check_mask[i].sum())], batch=1)
                             for i in range(min(4, check_rows))])
    merged.to(torch.bfloat16)
    bf16 = outputs(merged, check_ids, check_mask, batch=8)
    diff = np.abs(bf16 - fp32)
    correctness = {
        "rows": check_rows,
        "merge_max_abs_diff": float(np.abs(unmerged - fp32).max()),
        "padding_max_abs_diff": float(np.abs(single - fp32[: len(single)]).max()),
        "bf16_vs_fp32_max_abs_diff": float(diff.max()),
        "bf16_vs_fp32_mean_abs_diff": float(diff.mean()),
        "bf16_vs_fp32_correlation": float(np.corrcoef(bf16.ravel(), fp32.ravel())[0, 1]),
        "fp32_output_std": float(fp32.std()),
    }
    correctness["ok"] = bool(correctness["merge_max_abs_diff"] < 1e-3 * max(1.0, float(np.abs(fp32).max()))
                             and correctness["bf16_vs_fp32_correlation"] > 0.99)

    results = [throughput(merged, device, tokens, vocab, b, repeats) for b in sizes]
    report = {
        "bench": "gpu_student",
        "model": "gemma-3-1b shape (random init)" if not args.tiny else "tiny gemma-3 text config",
        "config": shape,
        "parameters": n_params,
        "lora": {"r": 16, "alpha": 32, "targets": ["q_proj", "k_proj", "v_proj", "o_proj"],
                 "trainable_parameters": n_trainable, "merged_for_inference": True},
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "dtype": "bfloat16 weights (merged LoRA)",
        "tokens": tokens,
        "train_articles_per_s": {"batch_size": train_batch, "value": round(train_rate, 2),
                                 "precision": "fp32 weights + bf16 autocast" if device.type == "cuda" else "fp32"},
        "inference": results,
        "correctness": correctness,
        "torch": torch.__version__,
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"gpu_student_{'tiny-' if args.tiny else ''}{device_tag(device)}.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"{report['model']} on {report['device']}: {n_params / 1e6:.1f} M parameters, {tokens} tokens/article")
    print(f"LoRA training (batch {train_batch}): {train_rate:.2f} articles/s")
    for r in results:
        print(f"  batch {r['batch_size']:>4}: " + (f"{r['articles_per_s']:.2f} articles/s" if "articles_per_s" in r
                                                   else r["error"]))
    print("correctness: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                      for k, v in correctness.items()))
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()
