"""The article model: what the ingest service publishes and every stage reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from filters.errors import FiltersError

KNOWN_FIELDS = {"id", "title", "content", "text", "url", "source", "source_type", "language", "published"}


class ArticleError(FiltersError, ValueError):
    """An article that cannot be scored; the message names the field and what to send instead."""


class Article(BaseModel):
    """One news article. `text` is accepted as an alias of `content`; unknown fields pass through in `metadata`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=512)
    title: str = Field(min_length=1)
    content: str = Field(default="", validation_alias=AliasChoices("content", "text"))
    url: str = ""
    source: str = ""
    source_type: str = ""
    language: str = ""
    published: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("content", "url", "source", "source_type", "language", mode="before")
    @classmethod
    def _null_is_missing(cls, value: Any) -> Any:
        # Ingest services send JSON null for unknown optional text fields; null means "not given".
        return "" if value is None else value

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("url")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        if value and not value.lower().startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https:// (or be left out)")
        return value

    @classmethod
    def parse(cls, data: Any) -> Article:
        """Validate a decoded message; unknown keys are kept in `metadata`, errors name each field."""
        if not isinstance(data, dict):
            raise ArticleError(f"article must be a JSON object, got {type(data).__name__}")
        known = {k: v for k, v in data.items() if k in KNOWN_FIELDS or k == "metadata"}
        extra = {k: v for k, v in data.items() if k not in known}
        if "published" not in known and "published_date" in extra:
            known["published"] = extra.pop("published_date")
        if extra:
            known["metadata"] = {**(known.get("metadata") or {}), **extra}
        try:
            return cls.model_validate(known)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'article'}: {e['msg']}" for e in err.errors()
            )
            ident = data.get("id", "<no id>")
            raise ArticleError(f"invalid article {ident!r}: {problems}") from None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (datetime as ISO string)."""
        return self.model_dump(mode="json")
