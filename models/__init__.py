"""Embedding, Stage-1 probe, router, Stage-2 student, calibration, training, evaluation and the oracle."""
