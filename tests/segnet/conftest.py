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


@pytest.fixture(autouse=True, scope="package")
def one_thread():
    """Run on one thread: these tensors are tiny, and threads only contend on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
