"""The names of the training steps, in order: light to import, so `distillery train-step --help` needs no torch."""

from __future__ import annotations

STEPS = ("split", "embed", "probe", "router", "student", "calibrate", "tiers", "curve", "evaluate")
