"""The root of every exception the streams package raises: `except StreamsError` catches any Kafka-side mistake."""

from __future__ import annotations


class StreamsError(Exception):
    """A streams failure (settings, security, broker, topics, wire records); the message names the input and the fix."""
