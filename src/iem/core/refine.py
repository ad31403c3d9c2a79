"""Refinement of IEM's masks beyond the paper: a GrabCut graph cut started from them.

IEM's objective (Eq. 7) with the Gaussian inpainter absorbs background of the object's colour
next to it and drops object parts of another colour (docs/beyond.md). GrabCut (Rother et al.,
SIGGRAPH 2004) fits a Gaussian mixture colour model to each region and cuts the image along
strong edges, which corrects exactly those errors, but it needs a starting labelling. Here IEM
provides it: pixels of IEM's foreground start as probable foreground, the others as probable
background, and a thin ring along the image border is certain background (objects rarely fill
the frame to its very edge). OpenCV's implementation is used (``cv2.grabCut``); it is imported
only when a refinement runs. A second cut from the box inside the ring can be added, its union
with the first kept always or only where GrabCut's own energy (:func:`grabcut_energy`) prefers it.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Tuple

import numpy as np
import torch

from iem.config import REFERENCE_SIZE, IEMConfig
from iem.imaging import to_uint8, working_size

#: Components of each of GrabCut's two colour mixtures (OpenCV's fixed choice); a region with
#: fewer pixels cannot be modelled, and the mask is then kept as IEM left it.
GMM_COMPONENTS = 5
#: Seed of OpenCV's random generator before each image (k-means initialisation of the
#: mixtures), so that a mask does not depend on what ran before it.
SEED = 0
#: Weight of GrabCut's boundary term (OpenCV's fixed gamma, after Rother et al. 2004).
GAMMA = 50.0
#: OpenCV's two colour mixtures of a labelling, ``(background, foreground)``, each ``(65,)``.
Models = Tuple[np.ndarray, np.ndarray]
#: Floor of a mixture's density before its logarithm, so that a colour far from every
#: component costs a large finite amount.
DENSITY_FLOOR = 1e-300


class _SerialOpenCV:
    """Context in which OpenCV runs each call on the calling thread alone.

    A batch is cut in parallel threads, one image each; OpenCV's own thread pool inside a cut at
    128 px costs more CPU than it saves time (measured on 48 GrabCut-50 images, one worker:
    131 ms of CPU per image against 119 ms single-threaded, for the same 118-119 ms of wall
    clock). OpenCV's thread count is global to the process: the first context to open saves
    it and the last to close restores it, so concurrent batches nest safely.

    In a process forked from another (:meth:`forked`), the context leaves OpenCV's setting
    alone: ``cv2.setNumThreads`` there waits forever for the parent's pool threads, which the
    fork did not copy, once the parent has run OpenCV in parallel. The cuts are the same
    either way; only their CPU time differs.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = 0
        self._saved = 0
        self._active = True

    def forked(self) -> None:
        """Turn the context off in a forked child (registered with ``os.register_at_fork``).
        Off, it takes no lock either: another thread of the parent may have held it at the fork."""
        self._active = False

    def __enter__(self) -> None:
        if not self._active:
            return
        import cv2

        with self._lock:
            if self._open == 0:
                self._saved = cv2.getNumThreads()
                cv2.setNumThreads(1)
            self._open += 1

    def __exit__(self, *exc: Any) -> None:
        if not self._active:
            return
        import cv2

        with self._lock:
            self._open -= 1
            if self._open == 0:
                cv2.setNumThreads(self._saved)


_SERIAL_OPENCV = _SerialOpenCV()
if hasattr(os, "register_at_fork"):  # no fork on Windows
    os.register_at_fork(after_in_child=_SERIAL_OPENCV.forked)


def border_width(border_at_reference: int, height: int, width: int) -> int:
    """Width of the certain-background ring, given for a 128 px image, scaled to the shorter side."""
    if border_at_reference <= 0:
        return 0
    return max(1, round(border_at_reference * min(height, width) / REFERENCE_SIZE))


def grabcut_labels(mask: np.ndarray, border: int) -> np.ndarray:
    """GrabCut's starting labels for an ``(H, W)`` bool mask: probable foreground on the mask,
    probable background elsewhere, certain background on a ring ``border`` pixels wide.

    Returns:
        ``(H, W)`` uint8 array of OpenCV's labels (``GC_BGD`` 0, ``GC_PR_BGD`` 2, ``GC_PR_FGD`` 3).
    """
    labels = np.where(mask, 3, 2).astype(np.uint8)
    if border > 0:
        labels[:border, :] = labels[-border:, :] = 0
        labels[:, :border] = labels[:, -border:] = 0
    return labels


def _run_grabcut(image: np.ndarray, mask: np.ndarray, iterations: int, border: int, models: Optional[Models] = None):
    """OpenCV's GrabCut from ``mask``: ``(labels, background model, foreground model)``, or
    None when the start leaves fewer than :data:`GMM_COMPONENTS` pixels to a region. With
    ``iterations`` 0 it only fits the two colour mixtures to the start. ``models``, the
    ``(background, foreground)`` mixtures such a fit returned for this ``mask``, ``image`` and
    ``border``, spare the fit (OpenCV's ``GC_EVAL``): the iterations that follow are the same."""
    import cv2

    labels = grabcut_labels(mask, border)
    foreground = int((labels == 3).sum())
    if foreground < GMM_COMPONENTS or labels.size - foreground < GMM_COMPONENTS:
        return None
    bgr = np.ascontiguousarray(image[..., ::-1])
    if models is not None:
        background, foreground = (model.reshape(1, -1).copy() for model in models)  # OpenCV updates them in place
        labels, background_model, foreground_model = cv2.grabCut(bgr, labels, None, background, foreground, iterations, cv2.GC_EVAL)
        return labels, background_model.reshape(-1), foreground_model.reshape(-1)
    cv2.setRNGSeed(SEED)  # OpenCV's generator is per thread: this thread's next draws are fixed
    # No colour models passed in: GC_INIT_WITH_MASK fits both mixtures to the labels and OpenCV
    # allocates them itself; they come back beside the labels.
    labels, background_model, foreground_model = cv2.grabCut(bgr, labels, None, None, None, iterations, cv2.GC_INIT_WITH_MASK)
    return labels, background_model.reshape(-1), foreground_model.reshape(-1)


def _grabcut(image: np.ndarray, mask: np.ndarray, iterations: int, border: int, models: Optional[Models] = None) -> np.ndarray:
    result = _run_grabcut(image, mask, iterations, border, models)
    return mask if result is None else (result[0] == 1) | (result[0] == 3)


def _cut_or_start(
    image: np.ndarray, start: np.ndarray, iterations: int, border: int, reject_empty: bool, models: Optional[Models] = None
) -> np.ndarray:
    """:func:`_grabcut` from ``start``; with ``reject_empty``, ``start`` itself where the cut
    leaves fewer than :data:`GMM_COMPONENTS` foreground pixels (GrabCut gave the whole frame to
    the background's mixture)."""
    cut = _grabcut(image, start, iterations, border, models)
    return start if reject_empty and np.count_nonzero(cut) < GMM_COMPONENTS else cut


def mixture_nll(model: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Negative log density of colours under one of OpenCV's GrabCut colour mixtures.

    Args:
        model: ``(65,)`` OpenCV's layout: :data:`GMM_COMPONENTS` weights, their means
            ``(5, 3)``, their covariances ``(5, 3, 3)``, row by row.
        colours: ``(N, 3)`` float, in the channel order the model was fitted in.

    Returns:
        ``(N,)`` ``-log sum_k w_k |S_k|^(-1/2) exp(-d_k^T S_k^-1 d_k / 2)``: the data term of
        OpenCV's graph, which leaves out the constant ``(2 pi)^(-3/2)``.
    """
    weights = model[:GMM_COMPONENTS]
    used = weights > 0
    means = model[GMM_COMPONENTS : 4 * GMM_COMPONENTS].reshape(GMM_COMPONENTS, 3)[used]
    covariances = model[4 * GMM_COMPONENTS :].reshape(GMM_COMPONENTS, 3, 3)[used]
    scales = weights[used] / np.sqrt(np.linalg.det(covariances))
    density = np.zeros(colours.shape[0])
    for mean, inverse, scale in zip(means, np.linalg.inv(covariances), scales):  # a loop over 5 beats one einsum
        diff = colours - mean
        density += scale * np.exp(-0.5 * ((diff @ inverse) * diff).sum(1))
    return -np.log(np.maximum(density, DENSITY_FLOOR))


def _neighbour_pairs(array: np.ndarray):
    """The four neighbour directions of GrabCut's graph (left, up, up-left, up-right), each as
    ``(pixels, their neighbours, weight factor)`` views of ``array``."""
    diagonal = 1 / np.sqrt(2.0)
    return (
        (array[:, 1:], array[:, :-1], 1.0),
        (array[1:], array[:-1], 1.0),
        (array[1:, 1:], array[:-1, :-1], diagonal),
        (array[1:, :-1], array[:-1, 1:], diagonal),
    )


def grabcut_energy(image: np.ndarray, mask: np.ndarray, border: int) -> float:
    """GrabCut's energy of a labelling (Rother et al. 2004, Eq. 2), per pixel.

    The two colour mixtures are fitted to the labelling itself as GrabCut starts (OpenCV,
    seeded), the data term is each pixel's :func:`mixture_nll` under its region's mixture, and
    the boundary term sums, over 8-connected neighbours on different sides,
    ``GAMMA / distance * exp(-beta * |z_m - z_n|^2)`` with ``beta`` the inverse of twice the
    mean squared colour difference of neighbours, as OpenCV's graph has them.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` bool labelling (foreground True).
        border: width of the certain-background ring the mixtures are fitted with.

    Returns:
        The energy divided by ``H * W``; ``inf`` when a region is too small to be modelled.
    """
    return _energy_and_models(image, mask, border)[0]


def _energy_and_models(image: np.ndarray, mask: np.ndarray, border: int) -> Tuple[float, Optional[Models]]:
    """:func:`grabcut_energy` and the ``(background, foreground)`` mixtures it fitted (None
    when a region is too small to be modelled)."""
    fitted = _run_grabcut(image, mask, 0, border)
    if fitted is None:
        return float("inf"), None
    _, background_model, foreground_model = fitted
    colours = image[..., ::-1].reshape(-1, 3).astype(np.float64)
    flat = mask.reshape(-1)
    data = mixture_nll(foreground_model, colours[flat]).sum() + mixture_nll(background_model, colours[~flat]).sum()
    pairs = _neighbour_pairs(image.astype(np.float64))
    squared = [((a - b) ** 2).sum(-1) for a, b, _ in pairs]
    mean = sum(float(d.sum()) for d in squared) / sum(d.size for d in squared)
    beta = 0.0 if mean <= 0 else 1 / (2 * mean)
    boundary = sum(  # only the pairs the labelling cuts
        GAMMA * factor * float(np.exp(-beta * d[a != b]).sum()) for d, (a, b, factor) in zip(squared, _neighbour_pairs(mask))
    )
    return (float(data) + boundary) / mask.size, (background_model, foreground_model)


def energy_colours(image: np.ndarray, space: str) -> np.ndarray:
    """The colours the energy rule measures labellings in.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        space: ``"rgb"``: ``image`` itself; ``"lab"``: CIELAB in OpenCV's 8-bit encoding
            (``L * 255 / 100``, ``a + 128``, ``b + 128``). The mixtures have full covariances,
            so a linear change of colours would leave the data term's comparison as it is;
            CIELAB is not linear in RGB, and its distances (the boundary term's) follow
            perceived colour differences.

    Returns:
        ``(H, W, 3)`` uint8 array.
    """
    if space == "rgb":
        return image
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_RGB2Lab)


def grabcut_refine_one(
    image: np.ndarray,
    mask: np.ndarray,
    iterations: int,
    border: int,
    box_union: bool = False,
    box_rule: str = "union",
    reject_empty: bool = False,
    energy_space: str = "rgb",
    polish_iterations: int = 0,
    box_iterations: int = 0,
    polish_rule: str = "always",
) -> np.ndarray:
    """GrabCut from IEM's mask on one image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` bool starting foreground.
        iterations: GrabCut iterations.
        border: width in pixels of the certain-background ring.
        box_union: also run GrabCut from the box inside the ring (every pixel off the ring
            probable foreground) and take the union of the two results.
        box_rule: with ``box_union``, ``"union"``: always return the union; ``"energy"``:
            return it only when its :func:`grabcut_energy` is lower than that of the cut from
            ``mask`` alone, which is returned otherwise (ties included).
        reject_empty: when the cut from ``mask`` leaves fewer than :data:`GMM_COMPONENTS`
            foreground pixels, take ``mask`` in its place (GrabCut gave the whole frame to the
            border's colour mixture). An empty cut from the box only adds nothing to the union.
        energy_space: with ``box_rule="energy"``, the colours both energies are measured in
            (:func:`energy_colours`); the cuts run on ``image`` as given.
        polish_iterations: GrabCut iterations run once more from the mask kept above, its
            colour mixtures fitted afresh to it (0: none). A union of two cuts is no labelling
            GrabCut would stop at; this pass lets the kept mask settle. With ``reject_empty``,
            a pass that empties the foreground keeps its start.
        box_iterations: with ``box_union``, GrabCut iterations of the cut from the box (0:
            ``iterations``).
        polish_rule: ``"always"``: the polish runs from whatever mask was kept; ``"union"``:
            only from a kept union to which the box's cut added pixels (the cut from ``mask``
            has run its ``iterations`` already).

    Returns:
        ``(H, W)`` bool refined foreground. A run whose starting foreground or background has
        fewer than :data:`GMM_COMPONENTS` pixels returns its start unchanged.
    """
    refined = _cut_or_start(image, mask, iterations, border, reject_empty)
    models = None  # the mixtures fitted to ``refined`` in the cuts' colours, when known
    kept_union = False  # whether ``refined`` is a union the box's cut added to
    if box_union:
        union = refined | _grabcut(image, np.ones_like(mask), box_iterations or iterations, border)
        if not np.array_equal(union, refined):  # a union equal to the cut leaves nothing to decide
            kept_union = box_rule == "union"
            if not kept_union:
                colours = energy_colours(image, energy_space)
                (union_energy, union_models), (own_energy, own_models) = (
                    _energy_and_models(colours, labelling, border) for labelling in (union, refined)
                )
                kept_union = union_energy < own_energy
                models = union_models if kept_union else own_models
                if energy_space != "rgb":  # fitted to other colours than the cuts see
                    models = None
            if kept_union:
                refined = union
    if polish_iterations > 0 and (kept_union or polish_rule == "always"):
        refined = _cut_or_start(image, refined, polish_iterations, border, reject_empty, models)
    return refined


def grabcut_refine(
    images: torch.Tensor,
    masks: torch.Tensor,
    iterations: int,
    border: int,
    box_union: bool,
    box_rule: str,
    reject_empty: bool,
    energy_space: str,
    polish_iterations: int = 0,
    box_iterations: int = 0,
    polish_rule: str = "always",
    workers: Optional[int] = None,
) -> torch.Tensor:
    """GrabCut started from each image's mask (:func:`grabcut_refine_one`), images in parallel.

    Args:
        images: ``(B, 3, H, W)`` float in [-1, 1].
        masks: ``(B, 1, H, W)`` bool.
        iterations: GrabCut iterations.
        border: ring width at 128 px (:func:`border_width`).
        box_union: as in :func:`grabcut_refine_one`.
        box_rule: as in :func:`grabcut_refine_one`.
        reject_empty: as in :func:`grabcut_refine_one`.
        energy_space: as in :func:`grabcut_refine_one`.
        polish_iterations: as in :func:`grabcut_refine_one`.
        box_iterations: as in :func:`grabcut_refine_one`.
        polish_rule: as in :func:`grabcut_refine_one`.
        workers: threads (OpenCV releases the GIL); torch's thread count when None.

    Returns:
        ``(B, 1, H, W)`` bool refined masks on the CPU.

    Raises:
        ValueError: the images do not have 3 channels, or OpenCV is not installed.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"the GrabCut refinement needs (B, 3, H, W) RGB images, got shape {tuple(images.shape)}")
    try:
        import cv2  # noqa: F401
    except ImportError:
        raise ValueError("the GrabCut refinement (IEMConfig.grabcut) needs OpenCV: pip install opencv-python-headless") from None
    height, width = images.shape[2:]
    ring = border_width(border, height, width)
    flat = masks.detach().cpu().numpy()[:, 0]

    def one(index: int) -> np.ndarray:
        return grabcut_refine_one(
            to_uint8(images[index]), flat[index], iterations, ring, box_union, box_rule, reject_empty, energy_space, polish_iterations,
            box_iterations, polish_rule,
        )

    count = workers or torch.get_num_threads()
    with _SERIAL_OPENCV, ThreadPoolExecutor(max(1, min(count, images.shape[0]))) as pool:
        refined = list(pool.map(one, range(images.shape[0])))
    return torch.from_numpy(np.stack(refined)).unsqueeze(1)


def photo_pass_size(photo_side: int, mask_side: int, config: IEMConfig) -> int:
    """The shorter side :func:`refine_on_photo` runs its pass at, or 0 where it does not run.

    Args:
        photo_side: the photo's shorter side, pixels.
        mask_side: the working mask's shorter side, pixels.
        config: ``grabcut`` and ``grabcut_photo_size``.

    Returns:
        ``min(config.grabcut_photo_size, photo_side)``, never enlarging the photo; 0 when
        ``config`` has no GrabCut or that size is not above the mask's.
    """
    target = min(config.grabcut_photo_size, photo_side)
    return target if config.grabcut and target > mask_side else 0


def refine_on_photo(photo: np.ndarray, mask: np.ndarray, config: IEMConfig) -> np.ndarray:
    """The photo path's second GrabCut pass, at ``config.grabcut_photo_size`` (beyond the paper).

    IEM and the first GrabCut pass work at the small working size; their mask's outline is as
    coarse as that size. Here GrabCut runs again on the photo brought to a shorter side of
    ``config.grabcut_photo_size`` (never enlarged), started from the working mask brought to
    that size, so that the outline follows the photo's finer edges.

    Args:
        photo: ``(H, W, 3)`` uint8 RGB photo.
        mask: ``(h, w)`` bool or soft in [0, 1] working-size mask covering the whole photo.
        config: ``grabcut``, ``grabcut_photo_size``, ``grabcut_iterations``, ``grabcut_border``,
            ``grabcut_reject_empty`` (a pass that empties the foreground keeps its start).
            The cut from the box (``grabcut_box_union``) is not run again here: its part of the
            working mask is already in the start, and this pass only moves the outline.

    Returns:
        ``(h', w')`` bool mask at the refinement size; ``mask`` itself when the pass is off
        (``grabcut`` False or ``grabcut_photo_size`` not above ``min(h, w)``).
    """
    target = photo_pass_size(min(photo.shape[:2]), min(np.shape(mask)), config)
    if not target:
        return mask
    mask = np.asarray(mask, dtype=np.float32)
    import cv2

    height, width = working_size(photo.shape[0], photo.shape[1], target)
    # Area averaging to shrink the photo (no aliasing, no float copy of a large photo),
    # bilinear to enlarge the mask; both on OpenCV, which the pass needs anyway.
    image = photo if (height, width) == photo.shape[:2] else cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
    start = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR) >= 0.5
    ring = border_width(config.grabcut_border, height, width)
    return grabcut_refine_one(image, start, config.grabcut_iterations, ring, reject_empty=config.grabcut_reject_empty)
