"""Wire formats of the oracle providers: OpenAI-compatible chat, Gemini REST and Anthropic Messages."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

from models.errors import ModelsError

TEMPERATURE = 0.3
MAX_OUTPUT_TOKENS = 4096


class ProviderError(ModelsError, ValueError):
    """A provider that cannot be used as configured (unknown name, missing key); the message says what to set."""


class ReplyShapeError(ModelsError, ValueError):
    """A 200 response whose body does not have the provider's documented shape."""


@dataclass(frozen=True)
class Reply:
    """The model's text and token usage from one successful call."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0


class Provider(Protocol):
    """Builds an HTTP request for a prompt and reads the reply; no I/O of its own."""

    @property
    def name(self) -> str: ...

    def request(self, prompt: str, model: str) -> tuple[str, dict[str, str], dict[str, Any]]: ...

    def parse(self, body: Any) -> Reply: ...


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class OpenAICompatible:
    """`POST {base}/chat/completions` with JSON mode: OpenAI, DeepSeek, vLLM, Ollama, llama.cpp server."""

    name: str
    base_url: str
    api_key: str = ""
    json_mode: bool = True

    def request(self, prompt: str, model: str) -> tuple[str, dict[str, str], dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": TEMPERATURE,
            "max_tokens": MAX_OUTPUT_TOKENS,
        }
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        return f"{self.base_url.rstrip('/')}/chat/completions", headers, body

    def parse(self, body: Any) -> Reply:
        try:
            text = body["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise ReplyShapeError(f"{self.name}: reply has no choices[0].message.content") from None
        if not isinstance(text, str):
            raise ReplyShapeError(f"{self.name}: choices[0].message.content is not text")
        usage = body.get("usage") or {}
        return Reply(text, _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")))


@dataclass(frozen=True)
class Gemini:
    """`POST {base}/models/{model}:generateContent` (Gemini REST, JSON response MIME type, no thinking budget)."""

    base_url: str
    api_key: str
    name: str = "gemini"

    def request(self, prompt: str, model: str) -> tuple[str, dict[str, str], dict[str, Any]]:
        config: dict[str, Any] = {
            "temperature": TEMPERATURE,
            "maxOutputTokens": MAX_OUTPUT_TOKENS,
            "responseMimeType": "application/json",
        }
        if model.startswith("gemini-2.5"):
            config["thinkingConfig"] = {"thinkingBudget": 0}  # thinking tokens are billed as output
        body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}], "generationConfig": config}
        headers = {"Content-Type": "application/json", "x-goog-api-key": self.api_key}
        return f"{self.base_url.rstrip('/')}/models/{model}:generateContent", headers, body

    def parse(self, body: Any) -> Reply:
        try:
            parts = body["candidates"][0]["content"]["parts"]
            text = "".join(p.get("text", "") for p in parts if isinstance(p, dict))
        except (KeyError, IndexError, TypeError):
            reason = ""
            if isinstance(body, dict):
                reason = str((body.get("promptFeedback") or {}).get("blockReason") or "")
            raise ReplyShapeError(
                f"gemini: reply has no candidates[0].content.parts{' (blocked: ' + reason + ')' if reason else ''}"
            ) from None
        usage = body.get("usageMetadata") or {}
        output = _int(usage.get("candidatesTokenCount")) + _int(usage.get("thoughtsTokenCount"))
        return Reply(text, _int(usage.get("promptTokenCount")), output)


@dataclass(frozen=True)
class Anthropic:
    """`POST {base}/messages` (Anthropic Messages API, version 2023-06-01)."""

    base_url: str
    api_key: str
    name: str = "anthropic"

    def request(self, prompt: str, model: str) -> tuple[str, dict[str, str], dict[str, Any]]:
        headers = {
            "Content-Type": "application/json",
            "x-api-key": self.api_key,
            "anthropic-version": "2023-06-01",
        }
        body = {
            "model": model,
            "max_tokens": MAX_OUTPUT_TOKENS,
            "temperature": TEMPERATURE,
            "messages": [{"role": "user", "content": prompt}],
        }
        return f"{self.base_url.rstrip('/')}/messages", headers, body

    def parse(self, body: Any) -> Reply:
        try:
            text = "".join(b.get("text", "") for b in body["content"] if b.get("type") == "text")
        except (KeyError, TypeError, AttributeError):
            raise ReplyShapeError("anthropic: reply has no content blocks") from None
        usage = body.get("usage") or {}
        return Reply(text, _int(usage.get("input_tokens")), _int(usage.get("output_tokens")))


# name -> (kind, default base URL, key env vars (first set wins), key required)
PROVIDERS: dict[str, tuple[str, str, tuple[str, ...], bool]] = {
    "openai": ("openai", "https://api.openai.com/v1", ("OPENAI_API_KEY",), True),
    "deepseek": ("openai", "https://api.deepseek.com/v1", ("DEEPSEEK_API_KEY",), True),
    "vllm": ("openai", "http://127.0.0.1:8000/v1", ("VLLM_API_KEY",), False),
    "ollama": ("openai", "http://127.0.0.1:11434/v1", ("OLLAMA_API_KEY",), False),
    "llamacpp": ("openai", "http://127.0.0.1:8080/v1", ("LLAMACPP_API_KEY",), False),
    "gemini": (
        "gemini", "https://generativelanguage.googleapis.com/v1beta", ("GEMINI_API_KEY", "GOOGLE_API_KEY"), True
    ),
    "anthropic": ("anthropic", "https://api.anthropic.com/v1", ("ANTHROPIC_API_KEY",), True),
}


def base_url_env(name: str) -> str:
    return f"DISTILLERY_{name.upper()}_BASE_URL"


def make_provider(name: str, base_url: str | None = None) -> Provider:
    """A provider by name; the key comes only from the environment, the base URL from the option or
    `DISTILLERY_<NAME>_BASE_URL` (so tests and self-hosted servers can point elsewhere)."""
    if name not in PROVIDERS:
        raise ProviderError(f"unknown oracle provider {name!r}; choose one of {', '.join(PROVIDERS)}")
    kind, default_url, key_envs, required = PROVIDERS[name]
    url = base_url or os.environ.get(base_url_env(name)) or default_url
    key = next((os.environ[e] for e in key_envs if os.environ.get(e)), "")
    if required and not key:
        raise ProviderError(f"provider {name!r} needs an API key: set {' or '.join(key_envs)} in the environment")
    if kind == "gemini":
        return Gemini(base_url=url, api_key=key)
    if kind == "anthropic":
        return Anthropic(base_url=url, api_key=key)
    return OpenAICompatible(name=name, base_url=url, api_key=key)
