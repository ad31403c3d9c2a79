"""Shared fixtures: the real data sets beside the repository and tiny synthetic images."""

from __future__ import annotations

import os
from pathlib import Path

# The compiled CPU loop in every test process, compiled at first use if needed (see
# iem.core.kernels.ready): the tests then check the loop users get, not a timing-dependent one.
os.environ.setdefault("IEM_NUMBA", "wait")

import pytest  # noqa: E402
import torch  # noqa: E402

#: ``<repo>/../shared/data``: Weizmann Horse and GrabCut with ground truth (see their MANIFESTs).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def require_shared(*parts: str) -> Path:
    """``SHARED_DATA / parts``, or the test stops: skipped, or failed when ``CI=true``.

    CI runs beside a copy of the data, so there a missing folder is an error, and the suite
    cannot go green by skipping the tests that check real results.
    """
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        message = f"shared data not found at {path}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: tests on the shared data must run)", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture
def shared_data() -> Path:
    return require_shared()


@pytest.fixture
def one_torch_thread():
    """One torch thread: these tensors are tiny, and on a shared 2-core machine more threads only wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def composite(height: int = 48, width: int = 48, seed: int = 0, shape: str = "disk"):
    """A textured background with a differently coloured textured object; returns (image, mask).

    image: ``(1, 3, H, W)`` float in [-1, 1]; mask: ``(1, 1, H, W)`` bool ground truth.
    """
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij")
    cy, cx = height * 0.5 + 2, width * 0.5 - 3
    if shape == "disk":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= (min(height, width) * 0.28) ** 2
    else:
        mask = ((yy - cy).abs() <= height * 0.22) & ((xx - cx).abs() <= width * 0.3)
    background = torch.tensor([-0.6, 0.3, -0.2]).view(3, 1, 1)
    foreground = torch.tensor([0.7, -0.5, 0.4]).view(3, 1, 1)
    image = torch.where(mask, foreground, background) + 0.08 * torch.randn(3, height, width, generator=g)
    return image.clamp(-1, 1).unsqueeze(0), mask.view(1, 1, height, width)
