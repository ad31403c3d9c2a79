"""End to end on GrabCut-50: the presets reproduce the authors' code on the same images.

Reference IoU (strict IoU) of the authors' code under the paper protocol: released preset
51.8 (49.2), paper preset 54.0 (50.3). Slow (about a minute on two cores): run with -m slow.
"""

from __future__ import annotations

import pytest

from iem.bench.methods import MethodContext, build_method
from iem.bench.runner import run_benchmark
from iem.datasets import open_dataset
from tests.conftest import require_shared

#: Published with one decimal: a match is within half a unit of the last digit; the paper
#: preset may differ by one image choosing another initial square (0.1 point on 50 images).
REFERENCE = {"released": (51.8, 49.2, 0.05), "paper": (54.0, 50.3, 0.15)}


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(REFERENCE))
def test_preset_matches_authors_code(preset: str) -> None:
    data = open_dataset(require_shared("grabcut"))
    method = build_method(preset, MethodContext(device="cpu"))
    result = run_benchmark(data, [method], "grabcut").results[0]
    iou, strict_iou, tolerance = REFERENCE[preset]
    assert result.images == 50
    assert 100 * result.mean("iou") == pytest.approx(iou, abs=tolerance)
    assert 100 * result.mean("strict_iou") == pytest.approx(strict_iou, abs=tolerance)
