"""Prompt insertion and prompt_hash provenance."""

from __future__ import annotations

import hashlib

import pytest

from filters.spec import SpecError
from models.oracle.prompting import COMPRESSION_MARK, Prompt, article_block, compress_words, content_hash


def test_prompt_hash_is_first_12_hex_of_sha256(oracle_spec):
    prompt = Prompt.for_spec(oracle_spec)
    text = oracle_spec.prompt_path.read_text(encoding="utf-8")
    assert prompt.hash == hashlib.sha256(text.encode()).hexdigest()[:12]


def test_render_inserts_article_block_once(oracle_spec):
    prompt = Prompt.for_spec(oracle_spec)
    out = prompt.render({"title": "T1", "text": "Body here.", "source": "src", "published": "2026-01-01"})
    assert "{{ARTICLE}}" not in out
    assert "Title: T1\nSource: src\nPublished: 2026-01-01\n\nBody here." in out
    assert out.startswith("You are a test oracle.")


def test_placeholder_must_appear_exactly_once(tmp_path):
    with pytest.raises(SpecError, match=r"exactly once \(found 2\)"):
        Prompt.from_text("{{ARTICLE}} and {{ARTICLE}}", tmp_path / "prompt.md")
    with pytest.raises(SpecError, match=r"found 0"):
        Prompt.from_text("no placeholder")


def test_missing_prompt_file_names_the_path(oracle_spec):
    oracle_spec.prompt_path.unlink()
    with pytest.raises(SpecError, match="has no oracle prompt"):
        Prompt.for_spec(oracle_spec)


def test_long_text_keeps_70_percent_head_30_percent_tail():
    text = " ".join(f"w{i}" for i in range(1000))
    out = compress_words(text, 100)
    head, tail = out.split(COMPRESSION_MARK)
    assert head.split() == [f"w{i}" for i in range(70)]
    assert tail.split() == [f"w{i}" for i in range(970, 1000)]
    assert compress_words("short text", 100) == "short text"


def test_header_lines_skip_empty_fields_and_content_alias():
    assert article_block({"title": "A", "content": "B"}) == "Title: A\n\nB"


def test_content_hash_ignores_metadata_but_not_text():
    a = {"title": "A", "text": "B", "url": "https://x.org/1"}
    assert content_hash(a) == content_hash({**a, "url": "https://y.org/2"})
    assert content_hash(a) != content_hash({**a, "text": "C"})


def test_every_shipped_non_draft_filter_has_a_usable_prompt():
    from filters.spec import load_spec, spec_paths

    specs = [load_spec(p) for p in spec_paths()]
    checked = [s.key for s in specs if s.status != "draft" and Prompt.for_spec(s).hash]
    assert checked, "no shipped filter specs found"
