"""Fixtures: a tiny synthetic folder-pair dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_data import build_tiny


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    return build_tiny(tmp_path)
