"""Fixtures of the runners tests: the tiny local model (built once per session, no downloads)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Llama (hidden 128, head dim 32) and a 512-token BPE tokenizer, saved locally."""
    pytest.importorskip("transformers")
    from runners.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_llama"), seed=0)
