"""Providers' wire formats and the client's retry policy, against the local fake server."""

from __future__ import annotations

import httpx
import pytest

from models.oracle.client import OracleCallError, OracleClient
from models.oracle.providers import Anthropic, Gemini, OpenAICompatible, ProviderError, make_provider

PROVIDER_CASES = [
    ("openai", "OPENAI_API_KEY", "/v1", "gpt-4o-mini"),
    ("gemini", "GEMINI_API_KEY", "/v1beta", "gemini-2.5-flash"),
    ("anthropic", "ANTHROPIC_API_KEY", "/v1", "claude-haiku-4-5"),
]


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def _client(fake, name, key_env, suffix, model, monkeypatch, **kw) -> tuple[OracleClient, Sleeps]:
    monkeypatch.setenv(key_env, "test-key")
    sleeps = Sleeps()
    provider = make_provider(name, fake.url + suffix)
    return OracleClient(provider, model, sleep=sleeps, seed=1, **kw), sleeps


@pytest.mark.parametrize(("name", "key_env", "suffix", "model"), PROVIDER_CASES)
async def test_each_provider_round_trip(fake_oracle, monkeypatch, name, key_env, suffix, model):
    client, _ = _client(fake_oracle, name, key_env, suffix, model, monkeypatch)
    completion = await client.complete("Marker0 prompt")
    await client.aclose()
    assert '"impact"' in completion.reply.text
    assert (completion.reply.input_tokens, completion.reply.output_tokens) == (1000, 200)
    sent = fake_oracle.requests[0]
    if name == "openai":
        assert sent["path"] == "/v1/chat/completions"
        assert sent["headers"]["Authorization"] == "Bearer test-key"
        assert sent["body"]["response_format"] == {"type": "json_object"}
    elif name == "gemini":
        assert sent["path"] == f"/v1beta/models/{model}:generateContent"
        assert sent["headers"]["x-goog-api-key"] == "test-key"
        assert sent["body"]["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}
    else:
        assert sent["path"] == "/v1/messages"
        assert sent["headers"]["x-api-key"] == "test-key"
        assert sent["headers"]["anthropic-version"] == "2023-06-01"


async def test_retries_after_429_then_succeeds(fake_oracle, monkeypatch):
    fake_oracle.plan["Marker0"] = [429, 503]
    client, sleeps = _client(fake_oracle, *PROVIDER_CASES[0], monkeypatch, backoff_base=0.5)
    completion = await client.complete("Marker0 prompt")
    await client.aclose()
    assert completion.attempts == 3
    assert fake_oracle.count("Marker0") == 3
    assert len(sleeps.delays) == 2
    assert 0.25 <= sleeps.delays[0] < 0.75 and 0.5 <= sleeps.delays[1] < 1.5  # doubling with ±50 % jitter


async def test_gives_up_after_max_retries(fake_oracle, monkeypatch):
    fake_oracle.plan["Marker0"] = [500, 500, 500]
    client, _ = _client(fake_oracle, *PROVIDER_CASES[0], monkeypatch, max_retries=2)
    with pytest.raises(OracleCallError, match="gave up after 3 attempts; last: HTTP 500") as err:
        await client.complete("Marker0 prompt")
    await client.aclose()
    assert err.value.kind == "http_500" and err.value.attempts == 3


async def test_client_errors_are_not_retried(fake_oracle, monkeypatch):
    fake_oracle.plan["Marker0"] = [400]
    client, sleeps = _client(fake_oracle, *PROVIDER_CASES[0], monkeypatch)
    with pytest.raises(OracleCallError, match="HTTP 400") as err:
        await client.complete("Marker0 prompt")
    await client.aclose()
    assert err.value.attempts == 1 and sleeps.delays == []


async def test_timeouts_are_retried():
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json={"choices": [{"message": {"content": "{}"}}], "usage": {}})

    sleeps = Sleeps()
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = OracleClient(OpenAICompatible("vllm", "http://local/v1"), "m", http=http, sleep=sleeps)
    completion = await client.complete("p")
    await http.aclose()
    assert completion.attempts == 2 and completion.reply.text == "{}" and len(sleeps.delays) == 1


def test_retry_after_header_is_honoured():
    client = OracleClient(OpenAICompatible("vllm", "http://x/v1"), "m", backoff_base=0.1, seed=0)
    assert client.backoff(1, retry_after=7.0) == 7.0
    assert client.backoff(10) == 60.0  # capped at backoff_max


def test_missing_key_names_the_env_var(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(ProviderError, match="set GEMINI_API_KEY or GOOGLE_API_KEY"):
        make_provider("gemini")
    with pytest.raises(ProviderError, match="unknown oracle provider 'gpt'"):
        make_provider("gpt")


def test_base_url_from_env_and_local_servers_need_no_key(monkeypatch):
    monkeypatch.setenv("DISTILLERY_OLLAMA_BASE_URL", "http://127.0.0.1:9/v1")
    provider = make_provider("ollama")
    assert isinstance(provider, OpenAICompatible) and provider.base_url == "http://127.0.0.1:9/v1"
    url, headers, _ = provider.request("p", "qwen3:14b")
    assert url == "http://127.0.0.1:9/v1/chat/completions" and "Authorization" not in headers


def test_reply_shapes_parse_usage():
    g = Gemini("http://x", "k").parse({"candidates": [{"content": {"parts": [{"text": "{"}, {"text": "}"}]}}],
                                       "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2,
                                                         "thoughtsTokenCount": 3}})
    assert (g.text, g.input_tokens, g.output_tokens) == ("{}", 5, 5)
    a = Anthropic("http://x", "k").parse({"content": [{"type": "text", "text": "{}"}], "usage": {"input_tokens": 9}})
    assert (a.text, a.input_tokens, a.output_tokens) == ("{}", 9, 0)


async def test_requests_per_minute_spaces_request_starts():
    now = {"t": 100.0}
    sleeps = Sleeps()

    async def sleep(delay: float) -> None:
        sleeps.delays.append(delay)
        now["t"] += delay

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"choices": [{"message": {"content": "{}"}}]})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = OracleClient(OpenAICompatible("vllm", "http://local/v1"), "m", http=http, sleep=sleep,
                          requests_per_minute=120, clock=lambda: now["t"])
    for _ in range(3):
        await client.complete("p")
    await http.aclose()
    assert sleeps.delays == [0.5, 0.5]  # 120/min = one start every 0.5 s
