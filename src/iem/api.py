"""The public functions: :func:`segment_batch`, :func:`segment` and :func:`inpaint`."""

from __future__ import annotations

import os
from typing import Callable, Optional, Tuple, Union

import numpy as np
import torch
from PIL import Image

from iem.config import IEMConfig
from iem.core import kernels
from iem.core.engine import (
    IEMResult,
    auto_chunk_runs,
    refine_masks,
    resolve_device,
    run_chunks,
    tune_cpu_allocator,
)
from iem.core.filters import LinearFilter
from iem.core.guidance import guidance_at, pin, pin_full
from iem.core.inpaint import Inpainter, gaussian_inpainter, inpaint_from_other_region
from iem.core.masks import initial_masks
from iem.core.refine import photo_pass_size, refine_on_photo
from iem.imaging import to_tensor

ImageInput = Union[Image.Image, np.ndarray, str, os.PathLike]

#: Images per slice when validating a batch.
_CHECK_CHUNK = 256


def resolve_config(config: Optional[IEMConfig], default: Callable[[], IEMConfig] = IEMConfig.paper) -> IEMConfig:
    """``config``, or ``default()`` (:meth:`IEMConfig.paper`) when None; anything else is a ``TypeError``."""
    if config is None:
        return default()
    if not isinstance(config, IEMConfig):
        hint = " (settings as a dict: IEMConfig.paper(**settings))" if isinstance(config, dict) else ""
        raise TypeError(f"config must be an IEMConfig or None, got {type(config).__name__}{hint}")
    return config


def _check_images(images: torch.Tensor, config: IEMConfig) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a (B, C, H, W) float tensor in [-1, 1], got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must be a (B, C, H, W) tensor, got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be a float tensor in [-1, 1], got dtype {images.dtype}")
    if images.shape[0] < 1:
        raise ValueError("images must hold at least one image")
    if config.grabcut and images.shape[1] != 3:
        raise ValueError(f"grabcut needs RGB images (3 channels), got {images.shape[1]}")
    smallest = config.kernel_size
    if min(images.shape[2:]) < smallest:
        raise ValueError(
            f"images of {images.shape[2]}x{images.shape[3]} px are too small: the filter needs at "
            f"least {smallest} px on each side"
        )
    for start in range(0, images.shape[0], _CHECK_CHUNK):  # in slices: memory stays bounded
        if not bool(torch.isfinite(images[start : start + _CHECK_CHUNK]).all()):
            raise ValueError("images contain NaN or infinite values")


def segment_batch(
    images: torch.Tensor,
    config: Optional[IEMConfig] = None,
    device: Union[str, torch.device] = "auto",
    init_masks: Optional[torch.Tensor] = None,
    chunk_size: Optional[int] = None,
    progress: Optional[Callable[[int], None]] = None,
    inpainter: Optional[Inpainter] = None,
    foreground: Optional[torch.Tensor] = None,
    background: Optional[torch.Tensor] = None,
) -> IEMResult:
    """Segment a batch of images with IEM phase 1 (paper section 3.2, Eq. 9).

    Every image is independent: its mask does not depend on the batch or chunk it is in.
    The batch is processed in chunks, so memory stays bounded whatever its length.

    Args:
        images: ``(B, C, H, W)`` float tensor in [-1, 1] (RGB in the paper); ``H, W`` at least
            ``config.kernel_size``.
        config: settings, :meth:`IEMConfig.paper` when None.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` or a ``torch.device``.
        init_masks: optional ``(B, 1, H, W)`` bool initial masks used instead of the squares of
            ``config.init_sizes`` (e.g. a network's prediction, to refine it).
        chunk_size: images per chunk; by default chosen from the image size and device.
        progress: called with the number of images finished after each chunk.
        inpainter: replaces psi_K (Eq. 6) by any differentiable ``(masked_images, masks) ->
            predictions`` callable; the gradient then comes from autograd.
        foreground, background: optional ``(B, 1, H, W)`` bool pixels that IEM may not change:
            set to 1 (foreground) or 0 (background) in the initial masks and after every step.

    Returns:
        :class:`IEMResult` on the CPU.

    The images are constants of the optimisation (IEM moves the mask, not the pixels): a
    tensor that requires grad is detached, and no gradient flows back to it.
    """
    config = resolve_config(config)
    _check_images(images, config)
    images = images.detach()
    b, _, h, w = images.shape
    if init_masks is not None:
        if not isinstance(init_masks, torch.Tensor):
            raise TypeError(f"init_masks must be a (B, 1, H, W) bool tensor, got {type(init_masks).__name__}")
        if tuple(init_masks.shape) != (b, 1, h, w):
            raise ValueError(f"init_masks must have shape {(b, 1, h, w)}, got {tuple(init_masks.shape)}")
        candidates = None
    else:
        candidates = initial_masks(h, w, config.init_sizes).view(1, -1, h, w)
    fixed = _pins(foreground, background, (b, 1, h, w))
    runs = 1 if candidates is None else candidates.shape[1]
    dev = resolve_device(device)
    if dev.type == "cpu":
        tune_cpu_allocator()
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be an integer >= 1 or None, got {chunk_size!r}")
    # The compiled loop's chunks may split an image's runs (both cores on one photo); the torch
    # loop's keep them together (auto_chunk_runs).
    whole = 1 if inpainter is None and dev.type == "cpu" and kernels.usable(images, config) else runs
    chunk_runs = auto_chunk_runs(h, w, dev, b * runs, whole) if chunk_size is None else chunk_size * runs
    filt = LinearFilter.build(h, w, config, images.dtype, dev)

    def starts(begin: int, end: int) -> torch.Tensor:
        if candidates is None:
            return init_masks[begin:end].to(dev, torch.bool)
        return candidates.to(dev).expand(end - begin, -1, -1, -1)

    result = run_chunks(images, starts, runs, config, filt, chunk_runs, progress, inpainter, fixed)
    # A refinement beyond IEM (config.grabcut) does not know the pins: they are set again after it.
    result.masks = pin(refine_masks(images, result.masks, config), fixed)
    return result


def _pins(
    foreground: Optional[torch.Tensor], background: Optional[torch.Tensor], shape: tuple
) -> Optional[torch.Tensor]:
    """The ``(B, 2, H, W)`` pins of :func:`segment_batch`, or None when nothing is marked."""
    if foreground is None and background is None:
        return None
    planes = []
    for name, marks in (("foreground", foreground), ("background", background)):
        if marks is not None and tuple(marks.shape) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(marks.shape)}")
        planes.append(torch.zeros(shape, dtype=torch.bool) if marks is None else marks.to("cpu", torch.bool))
    if bool((planes[0] & planes[1]).any()):
        raise ValueError("a pixel cannot be marked both foreground and background")
    return torch.cat(planes, dim=1)


def _load(image: ImageInput) -> Image.Image:
    if isinstance(image, torch.Tensor):
        raise TypeError(
            "iem.segment takes a PIL image, an (H, W, 3) uint8 array or a file path; for a "
            "(3, H, W) float tensor in [-1, 1] use iem.segment_batch(image[None]).masks[0, 0]"
        )
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 array, got shape {image.shape} and dtype {image.dtype}")
        return Image.fromarray(image)
    raise TypeError(f"iem.segment takes a PIL image, an (H, W, 3) uint8 array or a file path, got {type(image).__name__}")


def segment(
    image: ImageInput,
    config: Optional[IEMConfig] = None,
    size: int = 128,
    device: Union[str, torch.device] = "auto",
    init_mask: Optional[np.ndarray] = None,
    box: Optional[Tuple[float, float, float, float]] = None,
    foreground: Optional[np.ndarray] = None,
    background: Optional[np.ndarray] = None,
    upsample: str = "guided",
) -> np.ndarray:
    """Segment one image of any size with IEM and return its mask at the input's resolution.

    The photo path of ``iem segment``: the whole image is resized (bilinear, antialiased) so
    that its shorter side is ``size`` pixels, IEM runs there, and the mask is brought back to
    the input's size with the guided filter (:func:`iem.io.upsample_mask`), after a second
    GrabCut pass at ``config.grabcut_photo_size`` (:func:`iem.core.refine.refine_on_photo`).
    Given a path, the file is read as ``iem segment`` reads it (a JPEG's working copy decoded at a reduced
    scale), so the mask is the one ``iem segment`` writes for that file with the same settings.

    Args:
        image: PIL image, ``(H, W, 3)`` uint8 array, or a path to an image file.
        config: settings, :meth:`IEMConfig.best` when None.
        size: working resolution (shorter side, pixels).
        device: as in :func:`segment_batch`.
        init_mask: optional ``(H, W)`` bool initial mask at the input's resolution.
        box: optional ``(x0, y0, x1, y1)`` rectangle around the object, in the input's pixels
            (``x1``, ``y1`` exclusive): IEM starts from it instead of the centered squares.
        foreground, background: optional ``(H, W)`` bool masks at the input's resolution of
            pixels the user marked (strokes); IEM may not change them and the returned mask
            keeps them.
        upsample: ``"guided"`` (edge-aware), ``"bilinear"`` or ``"nearest"``.

    Returns:
        ``(H, W)`` bool numpy array, True on the foreground.

    Raises:
        iem.io.ImageReadError: the file cannot be read, or the image is too small or too
            elongated (:func:`iem.io.working_image`).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer (pixels), got {size!r}")
    config = resolve_config(config, IEMConfig.best)
    from iem.io import read_image, working_copy, working_image

    if isinstance(image, (str, os.PathLike, bytes)):
        working = working_copy(image, size)
        photo = read_image(image)
    else:
        photo = _load(image)
        working = working_image(photo, size, f"<{type(image).__name__}>")
    height, width = working.shape[:2]
    batch = to_tensor(working).unsqueeze(0)
    init = None
    if init_mask is not None:
        if np.shape(init_mask) != (photo.height, photo.width):
            raise ValueError(
                f"init_mask must be an (H, W) mask of the image's size {(photo.height, photo.width)}, "
                f"got shape {np.shape(init_mask)}"
            )
        init_image = Image.fromarray(np.asarray(init_mask, dtype=bool).astype(np.uint8) * 255)
        init_image = init_image.resize((width, height), Image.NEAREST)
        init = torch.from_numpy(np.asarray(init_image) > 127).view(1, 1, height, width)
    if box is not None and init is not None:
        raise ValueError("give either box or init_mask, not both")
    box_init, fixed = guidance_at((photo.height, photo.width), (height, width), box, foreground, background)
    init = box_init if init is None else init
    pins = (None, None) if fixed is None else (fixed[:, :1], fixed[:, 1:])
    mask = segment_batch(batch, config, device, init_masks=init, foreground=pins[0], background=pins[1]).masks
    return pin_full(photo_mask(photo, mask[0, 0].numpy(), config, upsample), foreground, background)


def photo_mask(photo: Image.Image, mask: np.ndarray, config: IEMConfig, upsample: str = "guided") -> np.ndarray:
    """A photo's mask at full resolution from its working-size mask: :func:`photo_pass`, then the
    upsampling (:func:`iem.io.upsample_mask`). What ``iem segment``, :func:`segment` and the
    server do.

    Args:
        photo: the RGB photo.
        mask: ``(h, w)`` bool or soft in [0, 1] working-size mask covering the whole photo.
        config: the settings the mask was made with.
        upsample: as in :func:`iem.io.upsample_mask`.

    Returns:
        ``(H, W)`` bool mask, ``H, W = photo.height, photo.width``.
    """
    from iem.io import upsample_mask

    return upsample_mask(photo_pass(photo, mask, config), photo, upsample)


def photo_pass(photo: Image.Image, mask: np.ndarray, config: IEMConfig) -> np.ndarray:
    """The second GrabCut pass on the photo (:func:`iem.core.refine.refine_on_photo`), where
    ``config`` has one; else ``mask`` itself.

    The pass runs on the photo first reduced by the largest whole factor that keeps its shorter
    side at least ``config.grabcut_photo_size`` (PIL's block means), so that a large photo is
    never converted whole to an array nor area-averaged at full size: on a 12-megapixel photo
    that is a few milliseconds instead of about 90.

    Args:
        photo: the RGB photo.
        mask: ``(h, w)`` bool or soft in [0, 1] working-size mask covering the whole photo.
        config: the settings the mask was made with.

    Returns:
        The mask at the pass's size, or ``mask``.
    """
    pixels = pass_photo(photo, min(np.shape(mask)), config)
    return mask if pixels is None else refine_on_photo(pixels, mask, config)


def pass_photo(photo: Image.Image, mask_side: int, config: IEMConfig) -> Optional[np.ndarray]:
    """The ``(h, w, 3)`` uint8 photo :func:`photo_pass` gives the GrabCut pass: reduced by the
    largest whole factor that keeps its shorter side at least the pass's size; None when
    ``config`` has no pass for a working mask of shorter side ``mask_side``."""
    target = photo_pass_size(min(photo.size), mask_side, config)
    if not target:
        return None
    factor = min(photo.size) // target
    return np.asarray(photo.reduce(factor) if factor > 1 else photo)


def inpaint(images: torch.Tensor, masks: torch.Tensor, config: Optional[IEMConfig] = None) -> torch.Tensor:
    """Each pixel inpainted by psi_K (Eq. 6) from the region it does not belong to.

    This is the "inpainting result" column of the paper's figures: foreground pixels are
    predicted from the background and background pixels from the foreground.

    Args:
        images: ``(B, C, H, W)`` float in [-1, 1].
        masks: ``(B, 1, H, W)`` bool (or 0/1 float) foreground, one per image.
        config: supplies the filter; :meth:`IEMConfig.paper` when None.

    Returns:
        ``(B, C, H, W)`` float tensor.
    """
    config = resolve_config(config)
    _check_images(images, config)
    b, _, h, w = images.shape
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"masks must be a (B, 1, H, W) bool tensor, got {type(masks).__name__}")
    if tuple(masks.shape) != (b, 1, h, w):
        raise ValueError(f"masks must have shape {(b, 1, h, w)} to match the images, got {tuple(masks.shape)}")
    filt = LinearFilter.build(images.shape[2], images.shape[3], config, images.dtype, images.device)
    with torch.no_grad():
        return inpaint_from_other_region(images, masks.to(images.device), gaussian_inpainter(filt, config.epsilon))
