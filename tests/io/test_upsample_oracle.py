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


def bilinear_by_formula(plane: np.ndarray, height: int, width: int, scale: float | None = None) -> np.ndarray:
    """Upsampling with pixel centres aligned: output pixel i reads input (i + 0.5) * s - 0.5,
    clamped, where s (input pixels per output pixel) is ``scale`` or else n_in / n_out."""

    def taps(n_out: int, n_in: int):
        pos = np.clip((np.arange(n_out) + 0.5) * (scale or n_in / n_out) - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        return lo, np.minimum(lo + 1, n_in - 1), pos - lo

    r0, r1, rw = taps(height, plane.shape[0])
    c0, c1, cw = taps(width, plane.shape[1])
    rows = plane[r0] * (1 - rw)[:, None] + plane[r1] * rw[:, None]
    return rows[:, c0] * (1 - cw) + rows[:, c1] * cw


def window_coefficients(guide: np.ndarray, src: np.ndarray, radius: int, eps: float, average: bool = True):
    """He et al. Eq. 14-15 for every full window (a linear solve each), then Eq. 16's averages.

    Returns ``(a, b, first)``: ``a`` ``(h, w, 3)`` and ``b`` ``(h, w)`` for the pixels ``first``
    and on from each border (those covered by full windows only); the rest is cut off.
    """
    side = 2 * radius + 1
    gw = sliding_window_view(guide, (side, side), axis=(0, 1))  # (h', w', 3, side, side)
    gw = gw.reshape(gw.shape[:3] + (-1,))
    pw = sliding_window_view(src, (side, side)).reshape(gw.shape[:2] + (-1,))
    mu = gw.mean(axis=-1)
    centred = gw - mu[..., None]
    sigma = np.einsum("hwcn,hwdn->hwcd", centred, centred) / gw.shape[-1]
    cov = np.einsum("hwcn,hwn->hwc", centred, pw - pw.mean(axis=-1, keepdims=True)) / gw.shape[-1]
    a = np.linalg.solve(sigma + eps * np.eye(3), cov[..., None])[..., 0]
    b = pw.mean(axis=-1) - np.einsum("hwc,hwc->hw", a, mu)
    if not average:  # Eq. 14 with each pixel's own window only: the bug the averaging prevents
        return a, b, radius
    aa = sliding_window_view(a, (side, side), axis=(0, 1)).mean(axis=(-2, -1))
    bb = sliding_window_view(b, (side, side)).mean(axis=(-2, -1))
    return aa, bb, 2 * radius


def guided_by_windows(guide: np.ndarray, src: np.ndarray, radius: int, eps: float, average: bool = True) -> np.ndarray:
    """He et al. Eq. 14-16 window by window; NaN where a pixel is not covered by full windows only."""
    h, w = src.shape
    a, b, first = window_coefficients(guide, src, radius, eps, average)
    out = np.full((h, w), np.nan)
    inner = (slice(first, h - first), slice(first, w - first))
    out[inner] = np.einsum("hwc,hwc->hw", a, guide[inner]) + b
    return out


def fast_guided_by_windows(photo: Image.Image, mask: np.ndarray, radius: float, eps: float) -> np.ndarray:
    """The fast guided filter (He and Sun 2015) as ``upsample_mask`` documents it, written from scratch.

    The coefficients are fitted on a grid about four times finer than the mask: the photo
    reduced by the whole factor k nearest to (photo / mask) / 4 (PIL's block means), the mask
    bilinearly upsampled to it, the window radius in mask pixels scaled to the grid; then
    interpolated bilinearly back to full resolution, grid pixel i centred on photo pixel
    k i + (k - 1) / 2, and applied to the full photo. NaN where the windows or the
    interpolation reach the border.
    """
    width, height = photo.size
    scale = max(height / mask.shape[0], width / mask.shape[1])  # photo pixels per mask pixel
    k = max(1, round(scale / 4))
    small = photo.reduce(k)
    grid = small.size
    guide = np.asarray(small, dtype=np.float64) / 255.0
    src = bilinear_by_formula(mask.astype(np.float64), grid[1], grid[0])
    a, b, first = window_coefficients(guide, src, max(1, round(radius * scale / k)), eps)
    planes = np.full((grid[1], grid[0], 4), np.nan)
    planes[first : grid[1] - first, first : grid[0] - first] = np.concatenate([a, b[..., None]], axis=-1)
    full = np.stack([bilinear_by_formula(planes[..., c], height, width, 1 / k) for c in range(4)], axis=-1)
    return np.einsum("hwc,hwc->hw", full[..., :3], np.asarray(photo, dtype=np.float64) / 255.0) + full[..., 3]


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


def rectangle_photo(width: int, height: int, box, seed: int) -> tuple:
    """Noisy two-colour photo with a rectangular object ``box = (top, bottom, left, right)``."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((height, width), bool)
    truth[box[0] : box[1], box[2] : box[3]] = True
    pixels = np.where(truth[..., None], [225.0, 150.0, 50.0], [40.0, 110.0, 140.0]) + rng.normal(0, 14, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB"), truth


@pytest.mark.parametrize(
    "width, height, box, mask_size",
    [
        (900, 700, (100, 650, 150, 800), (36, 28)),  # blocks wholly inside, outside and across the object
        (300, 600, (90, 520, 60, 250), (20, 40)),  # a tall photo: the scale from the height
        (180, 135, (30, 110, 40, 150), (128, 96)),  # a little larger than the mask: the full grid, radius 1
    ],
)
def test_guided_upsampling_on_a_grid_is_the_fast_guided_filter(width, height, box, mask_size) -> None:
    photo, truth = rectangle_photo(width, height, box, seed=width)
    mask = low_res_mask(np.roll(truth, (3, 5), axis=(0, 1)), *mask_size)  # edges off the photo's
    reference = fast_guided_by_windows(photo, mask, 1.0, GUIDED_EPS)
    for threshold in THRESHOLDS:
        compared, wrong = agreement(upsample_mask(mask, photo, "guided", threshold=threshold), reference, threshold)
        assert compared > 0.5 * width * height and wrong == 0, (threshold, wrong)


@pytest.mark.parametrize("low, high", [(0.499999, 0.9), (0.2, 0.500001)])
def test_blocks_of_values_close_to_the_threshold_are_computed(low, high) -> None:
    # On a black photo a = 0 exactly and the output is the smoothed mask itself: a block whose
    # values straddle the threshold, even by a millionth, must be computed pixel by pixel.
    photo = Image.new("RGB", (600, 600))
    mask = np.full((150, 150), low, dtype=np.float32)
    mask[:, 75:] = high
    out = upsample_mask(mask, photo, "guided")
    assert not out[:, :250].any() and out[:, 350:].all()
