"""Oracle client: providers over httpx, prompt insertion, response validation, cache, pricing and labelling runs."""

from __future__ import annotations
