"""Fixtures: replicas of the Flowers and CUB layouts in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from replicas import build_cub, build_flowers


@pytest.fixture
def flowers_root(tmp_path: Path) -> Path:
    return build_flowers(tmp_path)


@pytest.fixture
def cub_root(tmp_path: Path) -> Path:
    return build_cub(tmp_path)
