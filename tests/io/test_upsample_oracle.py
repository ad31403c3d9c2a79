"""The guided upsampling of ``upsample_mask`` against a guided filter written here from He et al.

The oracle follows the paper literally, one window at a time: per window ``k`` the linear
model of Eq. 14 fitted by ridge regression (Eq. 15, ``np.linalg.solve``), then per pixel the
average of the models of every window that covers it (Eq. 16). It shares no code with
``iem.io.upsample`` and only checks what the public function promises (the thresholded output),
away from the image border where implementations may clip or reflect windows, and away from
values within float32 rounding of the threshold.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from iem.io.upsample import GUIDED_EPS, THRESHOLD, upsample_mask
from tests.io.samples import synthetic_photo


def bilinear_by_formula(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Upsampling with pixel centres aligned: output pixel i reads input (i + 0.5) * n_in / n_out - 0.5."""

    def taps(n_out: int, n_in: int):
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        return lo, np.minimum(lo + 1, n_in - 1), pos - lo

    r0, r1, rw = taps(height, plane.shape[0])
    c0, c1, cw = taps(width, plane.shape[1])
    rows = plane[r0] * (1 - rw)[:, None] + plane[r1] * rw[:, None]
    return rows[:, c0] * (1 - cw) + rows[:, c1] * cw


def guided_by_windows(guide: np.ndarray, src: np.ndarray, radius: int, eps: float, average: bool = True) -> np.ndarray:
    """He et al. Eq. 14-16 window by window; NaN where a pixel is not covered by full windows only."""
    side = 2 * radius + 1
    h, w = src.shape
    gw = sliding_window_view(guide, (side, side), axis=(0, 1)).reshape(h - side + 1, w - side + 1, 3, -1)
    pw = sliding_window_view(src, (side, side)).reshape(h - side + 1, w - side + 1, -1)
    a = np.empty(gw.shape[:2] + (3,))
    b = np.empty(gw.shape[:2])
    for i in range(gw.shape[0]):
        for j in range(gw.shape[1]):
            colours, values = gw[i, j], pw[i, j]
            mu = colours.mean(axis=1)
            sigma = (colours - mu[:, None]) @ (colours - mu[:, None]).T / colours.shape[1]
            cov = (colours - mu[:, None]) @ (values - values.mean()) / colours.shape[1]
            a[i, j] = np.linalg.solve(sigma + eps * np.eye(3), cov)
            b[i, j] = values.mean() - a[i, j] @ mu
    out = np.full((h, w), np.nan)
    if not average:  # Eq. 14 with each pixel's own window only: the bug the averaging prevents
        out[radius : h - radius, radius : w - radius] = np.einsum("hwc,hwc->hw", a, guide[radius:-radius, radius:-radius]) + b
        return out
    aa = sliding_window_view(a, (side, side), axis=(0, 1)).mean(axis=(-2, -1))
    bb = sliding_window_view(b, (side, side)).mean(axis=(-2, -1))
    inner = (slice(2 * radius, h - 2 * radius), slice(2 * radius, w - 2 * radius))
    out[inner] = np.einsum("hwc,hwc->hw", aa, guide[inner]) + bb
    return out


def low_res_mask(truth: np.ndarray, width: int, height: int) -> np.ndarray:
    small = Image.fromarray(truth.astype(np.float32), "F").resize((width, height), Image.BILINEAR)
    return np.asarray(small) >= 0.5


#: Thresholds the soft output is cut at: several, so that the whole transition is compared.
THRESHOLDS = (0.2, THRESHOLD, 0.8)


def agreement(got: np.ndarray, reference: np.ndarray, threshold: float) -> tuple:
    """Pixels compared (inside the oracle, not within rounding of the threshold) and disagreements."""
    decided = np.isfinite(reference) & (np.abs(reference - threshold) > 1e-3)
    return int(decided.sum()), int((got[decided] != (reference[decided] >= threshold)).sum())


@pytest.fixture(scope="module")
def full_grid_case():
    # Photo 3x the mask: the coefficients are fitted at full resolution, radius 1 mask px = 3 px.
    # The mask's boundary is off the photo's edges, so the fitted a are far from 0 around it.
    photo, truth = synthetic_photo(72, 60, seed=5)
    mask = low_res_mask(np.roll(truth, (4, 5), axis=(0, 1)), 24, 20)
    guide = np.asarray(photo, dtype=np.float64) / 255.0
    src = bilinear_by_formula(mask.astype(np.float64), 60, 72)
    return photo, mask, guide, src


def test_guided_upsampling_is_he_et_al_eq_14_to_16(full_grid_case) -> None:
    photo, mask, guide, src = full_grid_case
    reference = guided_by_windows(guide, src, 3, GUIDED_EPS)
    for threshold in THRESHOLDS:
        compared, wrong = agreement(upsample_mask(mask, photo, "guided", threshold=threshold), reference, threshold)
        assert compared > 1000 and wrong == 0, threshold


def test_the_guided_oracle_tells_the_misreadings_apart(full_grid_case) -> None:
    # Without this the test above could pass for a filter that skips Eq. 16 or shifts by half a pixel.
    photo, mask, guide, src = full_grid_case
    reference = guided_by_windows(guide, src, 3, GUIDED_EPS)
    unaveraged = guided_by_windows(guide, src, 3, GUIDED_EPS, average=False)
    shifted = np.roll(reference, 1, axis=1)
    for wrong in (unaveraged, shifted):
        differences = sum(agreement(reference >= t, wrong, t)[1] for t in THRESHOLDS)
        assert differences >= 30


@pytest.mark.parametrize("method", ["guided", "bilinear", "nearest"])
def test_upsampling_commutes_with_flips(method: str) -> None:
    """Pixel centres aligned: flipping the inputs flips the mask.

    A half-pixel shift anywhere in the interpolation (of the mask, the guide or the guided
    filter's coefficients) breaks this along every boundary. The photo is 8x the mask, so the
    guided filter fits its coefficients on a coarser grid and interpolates them.
    """
    photo, truth = synthetic_photo(400, 400, seed=7)
    pixels = np.asarray(photo)
    truth = np.logical_xor(truth, np.add.outer(np.arange(400), np.arange(400)) % 97 < 9)  # thin stripes
    mask = low_res_mask(truth, 50, 50)
    base = upsample_mask(mask, photo, method)
    assert 0.05 < base.mean() < 0.95
    for op in (np.fliplr, np.flipud):
        got = upsample_mask(np.ascontiguousarray(op(mask)), Image.fromarray(np.ascontiguousarray(op(pixels))), method)
        # Rounding (of the guide resized to 8-bit colours, of float sums) may tip a few pixels
        # that sit on the threshold; a half-pixel shift moves whole edges (about 180 pixels here).
        assert int((got != op(base)).sum()) <= 40, op.__name__


def test_guided_upsampling_keeps_the_mask_where_the_photo_is_flat() -> None:
    # On a constant photo the guided filter has no edge to follow: it is the box-averaged bilinear mask.
    photo = Image.new("RGB", (72, 60), (90, 140, 200))
    mask = np.zeros((20, 24), bool)
    mask[5:15, 6:18] = True
    src = bilinear_by_formula(mask.astype(np.float64), 60, 72)
    reference = guided_by_windows(np.asarray(photo, dtype=np.float64) / 255.0, src, 3, GUIDED_EPS)
    compared, wrong = agreement(upsample_mask(mask, photo, "guided"), reference, THRESHOLD)
    assert compared > 1000 and wrong == 0
