"""A turn's usage as ``message_end`` and the message's metadata report it (Dify's ``LLMUsage``)."""

from __future__ import annotations

from typing import Any


def zero_usage() -> dict[str, Any]:
    """Usage of a turn that called no model (Dify's ``LLMUsage.empty_usage``)."""
    return usage(0, 0, 0, 0.0)


def usage(
    prompt_tokens: int,
    completion_tokens: int,
    total_tokens: int,
    latency: float,
    time_to_first_token: float | None = None,
    time_to_generate: float | None = None,
) -> dict[str, Any]:
    """Usage as ``message_end`` reports it; prices are unknown to Sluice, so zero (as Dify's decimal strings)."""
    return {
        "prompt_tokens": prompt_tokens,
        "prompt_unit_price": "0",
        "prompt_price_unit": "0",
        "prompt_price": "0",
        "completion_tokens": completion_tokens,
        "completion_unit_price": "0",
        "completion_price_unit": "0",
        "completion_price": "0",
        "total_tokens": total_tokens,
        "total_price": "0",
        "currency": "USD",
        "latency": round(latency, 3),
        "time_to_first_token": time_to_first_token,
        "time_to_generate": time_to_generate,
    }
