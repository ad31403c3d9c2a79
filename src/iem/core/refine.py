"""Refinement of IEM's masks beyond the paper: a GrabCut graph cut started from them.

IEM's objective (Eq. 7) with the Gaussian inpainter absorbs background of the object's colour
next to it and drops object parts of another colour (docs/beyond.md). GrabCut (Rother et al.,
SIGGRAPH 2004) fits a Gaussian mixture colour model to each region and cuts the image along
strong edges, which corrects exactly those errors, but it needs a starting labelling. Here IEM
provides it: pixels of IEM's foreground start as probable foreground, the others as probable
background, and a thin ring along the image border is certain background (objects rarely fill
the frame to its very edge). OpenCV's implementation is used (``cv2.grabCut``); it is imported
only when a refinement runs.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Optional

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


def _grabcut(image: np.ndarray, mask: np.ndarray, iterations: int, border: int) -> np.ndarray:
    import cv2

    labels = grabcut_labels(mask, border)
    foreground = int((labels == 3).sum())
    if foreground < GMM_COMPONENTS or labels.size - foreground < GMM_COMPONENTS:
        return mask
    bgr = np.ascontiguousarray(image[..., ::-1])
    cv2.setRNGSeed(SEED)  # OpenCV's generator is per thread: this thread's next draws are fixed
    # No colour models passed in: GC_INIT_WITH_MASK fits both mixtures to the labels and OpenCV
    # allocates them itself.
    cv2.grabCut(bgr, labels, None, None, None, iterations, cv2.GC_INIT_WITH_MASK)
    return (labels == 1) | (labels == 3)


def grabcut_refine_one(
    image: np.ndarray, mask: np.ndarray, iterations: int, border: int, box_union: bool = False
) -> np.ndarray:
    """GrabCut from IEM's mask on one image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` bool starting foreground.
        iterations: GrabCut iterations.
        border: width in pixels of the certain-background ring.
        box_union: also run GrabCut from the box inside the ring (every pixel off the ring
            probable foreground) and return the union of the two results.

    Returns:
        ``(H, W)`` bool refined foreground. A run whose starting foreground or background has
        fewer than :data:`GMM_COMPONENTS` pixels returns its start unchanged.
    """
    refined = _grabcut(image, mask, iterations, border)
    if box_union:
        refined = refined | _grabcut(image, np.ones_like(mask), iterations, border)
    return refined


def grabcut_refine(
    images: torch.Tensor,
    masks: torch.Tensor,
    iterations: int,
    border: int,
    box_union: bool = False,
    workers: Optional[int] = None,
) -> torch.Tensor:
    """GrabCut started from each image's mask (:func:`grabcut_refine_one`), images in parallel.

    Args:
        images: ``(B, 3, H, W)`` float in [-1, 1].
        masks: ``(B, 1, H, W)`` bool.
        iterations: GrabCut iterations.
        border: ring width at 128 px (:func:`border_width`).
        box_union: as in :func:`grabcut_refine_one`.
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
        return grabcut_refine_one(to_uint8(images[index]), flat[index], iterations, ring, box_union)

    count = workers or torch.get_num_threads()
    with ThreadPoolExecutor(max(1, min(count, images.shape[0]))) as pool:
        refined = list(pool.map(one, range(images.shape[0])))
    return torch.from_numpy(np.stack(refined)).unsqueeze(1)


def refine_on_photo(photo: np.ndarray, mask: np.ndarray, config: IEMConfig) -> np.ndarray:
    """The photo path's second GrabCut pass, at ``config.grabcut_photo_size`` (beyond the paper).

    IEM and the first GrabCut pass work at the small working size; their mask's outline is as
    coarse as that size. Here GrabCut runs again on the photo brought to a shorter side of
    ``config.grabcut_photo_size`` (never enlarged), started from the working mask brought to
    that size, so that the outline follows the photo's finer edges.

    Args:
        photo: ``(H, W, 3)`` uint8 RGB photo.
        mask: ``(h, w)`` bool or soft in [0, 1] working-size mask covering the whole photo.
        config: ``grabcut``, ``grabcut_photo_size``, ``grabcut_iterations``, ``grabcut_border``.
            The cut from the box (``grabcut_box_union``) is not run again here: its part of the
            working mask is already in the start, and this pass only moves the outline.

    Returns:
        ``(h', w')`` bool mask at the refinement size; ``mask`` itself when the pass is off
        (``grabcut`` False or ``grabcut_photo_size`` not above ``min(h, w)``).
    """
    target = min(config.grabcut_photo_size, min(photo.shape[:2]))
    if not config.grabcut or target <= min(np.shape(mask)):
        return mask
    mask = np.asarray(mask, dtype=np.float32)
    import cv2

    height, width = working_size(photo.shape[0], photo.shape[1], target)
    # Area averaging to shrink the photo (no aliasing, no float copy of a large photo),
    # bilinear to enlarge the mask; both on OpenCV, which the pass needs anyway.
    image = photo if (height, width) == photo.shape[:2] else cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
    start = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR) >= 0.5
    ring = border_width(config.grabcut_border, height, width)
    return grabcut_refine_one(image, start, config.grabcut_iterations, ring)
