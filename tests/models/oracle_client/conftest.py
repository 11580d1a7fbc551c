"""A local fake oracle server speaking the OpenAI, Gemini and Anthropic wire formats, scriptable per test."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from filters.spec import parse_spec

USAGE_IN, USAGE_OUT = 1000, 200
PROMPT_TEXT = "You are a test oracle. Score the article.\n\n{{ARTICLE}}\n\nReply with JSON only.\n"
GEMINI_PATH = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):generateContent$")


def good_label(**overrides: Any) -> dict[str, Any]:
    label: dict[str, Any] = {
        "content_type": "news",
        "impact": {"score": 6.0, "evidence": "a quote"},
        "evidence": {"score": 5.0, "evidence": "another quote"},
        "reach": {"score": 4.0, "evidence": "a third quote"},
    }
    label.update(overrides)
    return label


@dataclass
class FakeOracle:
    """Replies by article: `plan[marker]` is a list of steps used in order for prompts containing `marker`
    (a step is an int HTTP status, a str raw model text, or a dict label); otherwise `good_label()`."""

    url: str = ""
    plan: dict[str, list[Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_step(self, prompt: str) -> Any:
        with self.lock:
            for marker, steps in self.plan.items():
                if marker in prompt and steps:
                    return steps.pop(0)
        return good_label()

    def count(self, marker: str = "") -> int:
        return sum(1 for r in self.requests if marker in r["prompt"])


def _prompt_of(path: str, body: dict[str, Any]) -> str:
    if path.endswith("/chat/completions") or path.endswith("/messages"):
        return body["messages"][0]["content"]
    return body["contents"][0]["parts"][0]["text"]


def _wrap(path: str, text: str) -> dict[str, Any]:
    if path.endswith("/chat/completions"):
        return {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT, "total_tokens": 1200}}
    if path.endswith("/messages"):
        return {"id": "m", "type": "message", "content": [{"type": "text", "text": text}],
                "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT}}
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}}],
            "usageMetadata": {"promptTokenCount": USAGE_IN, "candidatesTokenCount": USAGE_OUT}}


def _handler(fake: FakeOracle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            path = self.path
            if not (path == "/v1/chat/completions" or path == "/v1/messages" or GEMINI_PATH.match(path)):
                self._send(404, {"error": f"no route {path}"})
                return
            prompt = _prompt_of(path, body)
            with fake.lock:
                fake.requests.append({"path": path, "headers": dict(self.headers), "body": body, "prompt": prompt})
            step = fake.next_step(prompt)
            if isinstance(step, int):
                self._send(step, {"error": {"message": f"scripted {step}"}})
                return
            text = step if isinstance(step, str) else json.dumps(step)
            self._send(200, _wrap(path, text))

    return Handler


@pytest.fixture
def fake_oracle() -> Iterator[FakeOracle]:
    fake = FakeOracle()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def oracle_spec(tiny_spec_data, tmp_path):
    """The tiny spec plus a cap-free `news` content type, with a prompt.md next to its filter.yaml."""
    data = {**tiny_spec_data, "content_types": {**tiny_spec_data["content_types"], "news": {}}}
    spec_dir = tmp_path / "tiny" / "v1"
    spec_dir.mkdir(parents=True)
    (spec_dir / "prompt.md").write_text(PROMPT_TEXT, encoding="utf-8")
    (spec_dir / "filter.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return parse_spec(data, spec_dir / "filter.yaml")


@pytest.fixture
def make_articles():
    return _make_articles


@pytest.fixture
def label_factory():
    return good_label


def _make_articles(n: int, prefix: str = "art") -> list[dict[str, Any]]:
    """Synthetic articles written for the tests (no third-party text)."""
    return [
        {"id": f"{prefix}-{i}", "title": f"Marker{i} headline about a test topic",
         "text": f"Body of synthetic article number {i}. " * 20, "url": f"https://example.org/{prefix}/{i}",
         "source": "test_source", "published": "2026-01-01T00:00:00", "language": "en"}
        for i in range(n)
    ]
