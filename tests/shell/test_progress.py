"""Progress bars in logs: plain lines, no carriage returns or escape codes, throttled; docstring examples run."""

from __future__ import annotations

import doctest
import io
import itertools

import pytest
from tqdm import tqdm

import distillery.errors
import distillery.progress
from distillery.progress import PlainLines


def test_a_bar_becomes_throttled_plain_lines():
    out = io.StringIO()
    ticks = itertools.count(0.0, 1.0)  # one second per write
    stream = PlainLines(out, interval=10.0, clock=lambda: next(ticks))
    for _ in tqdm(range(100), desc="score", file=stream, mininterval=0, miniters=1, ascii=True):
        pass
    stream.write("done\n")
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines[0].startswith("score:   0%") and lines[-2].startswith("score: 100%") and lines[-1] == "done"
    assert 3 <= len(lines) <= 15  # ~100 redraws at one second each, one line per 10 s, plus the final state


def test_nested_bars_and_log_lines_leave_no_blank_lines_or_escapes():
    out = io.StringIO()
    stream = PlainLines(out, interval=0.0)
    for i in tqdm(range(3), desc="outer", file=stream):
        for _ in tqdm(range(2), desc="inner", leave=False, file=stream):
            pass
        if i == 1:
            stream.write("INFO halfway\n")
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text and "\n\n" not in text
    assert "INFO halfway\n" in text and text.splitlines()[-1].startswith("outer: 100%")


@pytest.mark.parametrize("module", [distillery.progress, distillery.errors], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    assert doctest.testmod(module).failed == 0
