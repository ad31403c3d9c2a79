"""Fixtures of the phase-2 tests."""

from __future__ import annotations

import pytest
import torch

from iem.segnet.model import SegNet


@pytest.fixture
def tiny_model() -> SegNet:
    """An untrained network for 32 px inputs with fixed weights (fast to run and export)."""
    torch.manual_seed(0)
    return SegNet(image_size=32).eval()


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test of this folder on one torch thread."""
