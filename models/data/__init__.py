"""Label-set preparation: deduplicate, validate, report and split oracle labels; merge label sets."""

from __future__ import annotations
