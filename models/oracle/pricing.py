"""USD list prices per million tokens, used for the per-call cost in the metrics and the run summary."""

from __future__ import annotations

from dataclasses import dataclass

# (input, output) USD per 1M tokens, standard (non-batch) list prices as published by the providers in 2025;
# check them before budgeting. Local servers (vLLM, Ollama, llama.cpp) cost nothing per token.
PRICES: dict[str, tuple[float, float]] = {
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.0-flash-lite": (0.075, 0.30),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.5-pro": (1.25, 10.00),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "deepseek-chat": (0.27, 1.10),
    "deepseek-reasoner": (0.55, 2.19),
    "claude-3-5-haiku-latest": (0.80, 4.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-sonnet-4-0": (3.00, 15.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-opus-4-1": (15.00, 75.00),
}
FREE_PROVIDERS = {"vllm", "ollama", "llamacpp"}


@dataclass(frozen=True)
class Price:
    """USD per 1M input and output tokens."""

    input_per_m: float
    output_per_m: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_m + output_tokens * self.output_per_m) / 1_000_000


def price_for(provider: str, model: str, override: tuple[float, float] | None = None) -> Price | None:
    """The price of a model: the override, then the table (also by prefix, e.g. dated model ids), free for
    local servers; None when unknown (the summary then says to pass --price-in/--price-out)."""
    if override is not None:
        return Price(*override)
    if provider in FREE_PROVIDERS:
        return Price(0.0, 0.0)
    if model in PRICES:
        return Price(*PRICES[model])
    matches = [m for m in PRICES if model.startswith(m)]
    if matches:
        return Price(*PRICES[max(matches, key=len)])
    return None
