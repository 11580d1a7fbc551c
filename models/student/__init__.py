"""The Stage-2 student for serving: `config` (StudentConfig), `model` (the inference `Student`), `backbone`.

Training (loop, loss, data, layer cache) lives in `models.training.student`; nothing here imports it. The names
below are resolved lazily so `import models.student.config` stays light and old imports keep working:
`from models.student import Student` is the serving class; `train_student` / `regression_loss` /
`sample_weights` / `targets` are forwarded to `models.training.student` and `mae_report` to `models.metrics`, only
when asked for (new code imports them from there).
"""

from __future__ import annotations

import importlib
from typing import Any

_SERVING = {"Student": "models.student.model", "encode_articles": "models.student.model",
            "StudentConfig": "models.student.config", "StudentError": "models.student.backbone"}
_TRAINING = {"train_student", "regression_loss", "sample_weights", "targets"}


def __getattr__(name: str) -> Any:
    if name in _SERVING:
        return getattr(importlib.import_module(_SERVING[name]), name)
    if name in _TRAINING:
        return getattr(importlib.import_module("models.training.student"), name)
    if name == "mae_report":
        return importlib.import_module("models.metrics").mae_report
    raise AttributeError(f"module 'models.student' has no attribute {name!r}")
