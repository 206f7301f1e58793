"""Optional test requirements: a test that lacks one is skipped in one line that says what is
missing and how to get it (under ``CI`` it fails instead: ``pip install -e ".[test]"`` installs
every package a test imports)."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

__all__ = ["need", "skip_or_fail"]

# the extra that brings each optional module (all are in the `test` extra as well)
EXTRAS = {
    "huggingface_hub": "hub",
    "peft": "train",
    "rapidocr_onnxruntime": "vqa",
    "reasoning_gym": "train",
    "safetensors": "train",
    "sqlalchemy": "sql",
    "torch": "train",
    "transformers": "train",
}


def need(module: str) -> ModuleType:
    """Import ``module`` or skip: ``needs torch (No module named 'torch'): pip install ...``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        extra = EXTRAS.get(module)
        detail = (str(error).strip().splitlines() or ["not installed"])[0]
        how = f"pip install -e '.[{extra}]' (or '.[test]' for every test)" if extra \
            else "pip install -e '.[test]'"
        skip_or_fail(f"needs {module} ({detail}): {how}")
        raise  # unreachable: skip_or_fail raises


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``; fail under CI, where the `test` extra must be complete."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(reason)
    pytest.skip(reason, allow_module_level=True)
