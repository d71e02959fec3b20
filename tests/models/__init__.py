from __future__ import annotations

import pytest


def use_model_files(monkeypatch: pytest.MonkeyPatch, **paths: str) -> None:
    """RETOUCH_MODEL_<NAME> as an operator sets it: read by Settings, handed to models.configure (undone after)."""
    from retouch import models
    from retouch.settings import Settings

    monkeypatch.setattr(models, "_overrides", dict(models._overrides))
    for name, path in paths.items():
        monkeypatch.setenv(f"RETOUCH_MODEL_{name}", path)
    models.configure(threads=models.threads(), overrides=Settings().model_overrides)
