"""The Stage-2 student for serving: `config` (StudentConfig), `model` (the inference `Student`), `backbone`.

Training (loop, loss, data, layer cache) lives in `models.training.student` and metrics in `models.metrics`;
nothing here imports or forwards them. The serving names below resolve lazily so `import models.student.config`
stays light: `from models.student import Student` is the serving class.
"""

from __future__ import annotations

import importlib
from typing import Any

_SERVING = {"Student": "models.student.model", "encode_articles": "models.student.model",
            "StudentConfig": "models.student.config", "StudentError": "models.student.backbone"}


def __getattr__(name: str) -> Any:
    if name in _SERVING:
        return getattr(importlib.import_module(_SERVING[name]), name)
    raise AttributeError(f"module 'models.student' has no attribute {name!r}")
