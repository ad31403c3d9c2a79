"""The registry of segmentation methods a benchmark can run.

A method turns a batch of images (float (B, 3, H, W) in [-1, 1]) into boolean masks (B, H, W).
Methods are built by name from a :class:`MethodContext` (device, config overrides, model path),
so a method defined elsewhere joins every benchmark with one call::

    from iem.bench.methods import register_method
    register_method("paper+segnet", build_segnet_method, "IEM refined by the SegNet of --model")

where ``build_segnet_method(name, context)`` returns a :class:`Method` (reading
``context.model``); setting ``in_figure = True`` on it adds its masks to the default figure.

Built in:

* IEM presets ``paper`` (three initial squares, section 4.2), ``released`` (one 78 px square,
  the authors' code) and ``best`` (beyond the paper, docs/beyond.md), and any preset followed by ``+``-joined changes from
  :data:`iem.config.ABLATIONS` (Table 4) or :data:`iem.config.VARIANTS` (Table 5), e.g.
  ``paper+no_smoothing`` or ``paper+l2_size``;
* ``grabcut``: OpenCV's GrabCut (Rother et al. 2004) from the centered rectangle of IEM's
  released initial square (1/5 margin), and ``grabcut_wide`` from a rectangle with a 1/16
  margin, see :class:`GrabCutMethod`;
* ``square``: the released code's initial mask, a centered 78 px square at 128 px, unchanged;
* ``all``: every pixel foreground.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch

import iem
from iem.config import ABLATIONS, PRESETS, VARIANTS, IEMConfig
from iem.core.engine import resolve_device
from iem.core.masks import initial_masks
from iem.datasets.protocol import tensor_to_uint8

#: Separator between a preset and its ablations / variants in a method name.
MODIFIER_SEPARATOR = "+"

#: GrabCut: fraction of each side left outside the initial rectangle. 1/5 is the margin of the
#: released IEM code's initial square (``128 // 5`` = 25 px each side at 128 px), so GrabCut and
#: IEM start from the same box.
GRABCUT_MARGIN = 1 / 5
#: Margin of the ``grabcut_wide`` baseline: 1/16 (8 px at 128 px), a box around nearly the whole
#: image. GrabCut takes everything outside its box as certain background, so objects reaching
#: past the 1/5 box often drive it to an empty mask; the wide box shows that sensitivity.
GRABCUT_WIDE_MARGIN = 1 / 16
#: GrabCut iterations (OpenCV's ``iterCount``).
GRABCUT_ITERATIONS = 5


class MethodError(Exception):
    """A method could not segment some input; ``str(err)`` is a one-line reason."""


@dataclass(frozen=True)
class MethodContext:
    """What a method may need beyond the images.

    Attributes:
        device: Torch device for IEM (``"auto"``, ``"cpu"``, ``"cuda"``).
        config_overrides: IEMConfig field changes applied to every IEM method on top of its
            preset and before its ablations / variants (so ``paper+no_regularizer`` keeps
            ``lambda_=0`` whatever is overridden).
        model: Path of a trained network for methods that use one (phase 2).
        seed: Seed for methods with randomness (GrabCut's GMM initialisation).
    """

    device: str = "auto"
    config_overrides: Mapping[str, Any] = field(default_factory=dict)
    model: Optional[Path] = None
    seed: int = 0


class Method:
    """Base class of a benchmark method.

    Attributes:
        name: Row name in reports.
        description: One line saying what the method is (printed in the Markdown report).
        config: The IEM settings behind the method, or None when it is not IEM; figures use it
            for the inpainting column (the paper preset's filter otherwise).
        in_figure: Whether the figure shows this method's masks by default, as the paper's
            figures show the SegNet mask beside IEM's (set by such methods).
    """

    name: str = ""
    description: str = ""
    config: Optional[IEMConfig] = None
    in_figure: bool = False

    def segment(self, images: torch.Tensor) -> torch.Tensor:
        """Masks (B, H, W) bool for images (B, 3, H, W) in [-1, 1]."""
        raise NotImplementedError


MethodFactory = Callable[[str, MethodContext], Method]


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: how to build it and a line for ``iem bench --help``."""

    name: str
    factory: MethodFactory
    description: str


_REGISTRY: Dict[str, MethodSpec] = {}


def register_method(name: str, factory: MethodFactory, description: str, replace: bool = False) -> None:
    """Make ``name`` available to benchmarks; ``factory(name, context)`` builds the method.

    Raises:
        ValueError: ``name`` is empty, contains a comma, or is taken (unless ``replace``).
    """
    if not name or "," in name or name != name.strip():
        raise ValueError(f"invalid method name {name!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"method {name!r} is already registered")
    _REGISTRY[name] = MethodSpec(name, factory, description)


def registered_methods() -> List[MethodSpec]:
    """The registered methods, in registration order."""
    return list(_REGISTRY.values())


def ablation_names(preset: str = "paper") -> List[str]:
    """Method names of the Table 4 ablations on ``preset`` (``paper+no_regularizer``, ...)."""
    return [f"{preset}{MODIFIER_SEPARATOR}{name}" for name in ABLATIONS]


def variant_names(preset: str = "paper") -> List[str]:
    """Method names of the Table 5 objective variants on ``preset`` (``paper+l2_size``, ...)."""
    return [f"{preset}{MODIFIER_SEPARATOR}{name}" for name in VARIANTS]


def parse_iem_name(name: str) -> Tuple[str, List[str]]:
    """Split ``"paper+no_smoothing+l2_size"`` into the preset and its modifiers, validating both.

    Raises:
        ValueError: unknown preset or modifier.
    """
    preset, *modifiers = name.split(MODIFIER_SEPARATOR)
    if preset not in PRESETS:
        raise ValueError(f"unknown IEM preset {preset!r} in {name!r}; choose one of {', '.join(PRESETS)}")
    known = {**ABLATIONS, **VARIANTS}
    for modifier in modifiers:
        if modifier not in known:
            raise ValueError(
                f"unknown change {modifier!r} in {name!r}; ablations: {', '.join(ABLATIONS)}; "
                f"variants: {', '.join(VARIANTS)}"
            )
    return preset, modifiers


def iem_config(name: str, overrides: Optional[Mapping[str, Any]] = None) -> IEMConfig:
    """The IEMConfig a method name stands for: preset, then ``overrides``, then modifiers.

    Raises:
        ValueError: unknown name, unknown field or invalid value in ``overrides``.
    """
    preset, modifiers = parse_iem_name(name)
    overrides = dict(overrides or {})
    fields = set(IEMConfig().to_dict())
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown IEM setting(s) {', '.join(unknown)}; settings: {', '.join(sorted(fields))}")
    try:
        config = IEMConfig.preset(preset, **overrides)
    except TypeError as err:  # a value of the wrong type, e.g. a string where a number goes
        raise ValueError(f"invalid IEM setting in {overrides}: {err}") from None
    known = {**ABLATIONS, **VARIANTS}
    for modifier in modifiers:
        config = config.replace(**known[modifier])
    return config


def build_method(name: str, context: Optional[MethodContext] = None) -> Method:
    """Build the method called ``name``: a registered name, or an IEM preset with changes.

    Raises:
        ValueError: the name is neither registered nor a valid IEM name.
    """
    context = context or MethodContext()
    spec = _REGISTRY.get(name)
    if spec is not None:
        return spec.factory(name, context)
    if name.split(MODIFIER_SEPARATOR)[0] in PRESETS:
        return IEMMethod(name, iem_config(name, context.config_overrides), context.device)
    raise ValueError(f"unknown method {name!r}; available: {', '.join(available_names())}")


def available_names() -> List[str]:
    """Registered names, then the ablation and variant names of the paper preset."""
    names = [spec.name for spec in registered_methods()]
    return names + [n for n in ablation_names() + variant_names() if n not in names]


class IEMMethod(Method):
    """IEM phase 1 through :func:`iem.segment_batch` (the core chunks the batch itself)."""

    def __init__(self, name: str, config: IEMConfig, device: str = "auto") -> None:
        self.name = name
        self.config = config
        # Resolved now so that an unusable device is one error up front, not one per image.
        try:
            self.device = resolve_device(device)
        except RuntimeError as err:  # torch's message for a malformed device string
            raise ValueError(f"invalid device {device!r}: {err}") from None
        changed = {k: v for k, v in config.to_dict().items() if v != IEMConfig().to_dict()[k]}
        settings = ", ".join(f"{k}={v}" for k, v in changed.items()) or "the paper's defaults"
        self.description = f"IEM, {settings}"

    def segment(self, images: torch.Tensor) -> torch.Tensor:
        try:
            result = iem.segment_batch(images, self.config, device=self.device)
        except ValueError as err:
            raise MethodError(str(err)) from None
        return result.masks[:, 0]


class SquareMethod(Method):
    """The released code's initial mask (a centered 78 px square at 128 px), as a floor."""

    name = "square"
    description = "centered square of side 78/128 of the shorter side (IEM's released initial mask), no optimisation"

    def segment(self, images: torch.Tensor) -> torch.Tensor:
        b, _, h, w = images.shape
        square = initial_masks(h, w, IEMConfig.released().init_sizes)[0, 0]
        return square.to(torch.bool).expand(b, h, w).clone()


class AllForegroundMethod(Method):
    """Every pixel foreground: what the metrics give for no segmentation at all."""

    name = "all"
    description = "every pixel foreground"

    def segment(self, images: torch.Tensor) -> torch.Tensor:
        b, _, h, w = images.shape
        return torch.ones(b, h, w, dtype=torch.bool)


def grabcut_rectangle(height: int, width: int, margin: float = GRABCUT_MARGIN) -> Tuple[int, int, int, int]:
    """GrabCut's initial rectangle ``(x, y, w, h)``: the image minus ``floor(margin * side)`` on each side.

    At 128 x 128 this is the released IEM code's initial square (25 px margins, side 78).
    """
    dx, dy = int(math.floor(margin * width)), int(math.floor(margin * height))
    return dx, dy, width - 2 * dx, height - 2 * dy


class GrabCutMethod(Method):
    """OpenCV GrabCut (Rother et al. 2004) initialised with a centered rectangle.

    The rectangle leaves ``floor(margin * side)`` pixels on each side (:func:`grabcut_rectangle`).
    Runs :data:`GRABCUT_ITERATIONS` iterations on the uint8 image under the same protocol as the
    other methods; pixels labelled definite or probable foreground form the mask. OpenCV's random
    generator is reseeded before each image so that runs repeat exactly.
    """

    def __init__(
        self, name: str = "grabcut", margin: float = GRABCUT_MARGIN, seed: int = 0, description: Optional[str] = None
    ) -> None:
        import cv2  # a dependency of iem (the photo path's upsampling)

        if not 0 <= margin < 0.5:
            raise ValueError(f"GrabCut margin must be in [0, 0.5), got {margin}")
        self._cv2 = cv2
        self.name = name
        self.margin = margin
        self.seed = seed
        self.description = description or grabcut_description(margin)

    def segment(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._one(image) for image in images])

    def _one(self, image: torch.Tensor) -> torch.Tensor:
        cv2 = self._cv2
        rgb = tensor_to_uint8(image)
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        labels = np.zeros(rgb.shape[:2], np.uint8)
        background_model = np.zeros((1, 65), np.float64)
        foreground_model = np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(self.seed)
        try:
            cv2.grabCut(
                bgr,
                labels,
                grabcut_rectangle(*rgb.shape[:2], margin=self.margin),
                background_model,
                foreground_model,
                GRABCUT_ITERATIONS,
                cv2.GC_INIT_WITH_RECT,
            )
        except cv2.error as err:
            reason = str(err).strip().splitlines()[-1] if str(err).strip() else "OpenCV error"
            raise MethodError(f"GrabCut failed: {reason}") from None
        foreground = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
        return torch.from_numpy(foreground)


def grabcut_description(margin: float) -> str:
    """One line describing a GrabCut baseline with the given rectangle margin."""
    share = f"1/{round(1 / margin)}" if margin > 0 and abs(1 / margin - round(1 / margin)) < 1e-9 else f"{margin:g}"
    return f"OpenCV GrabCut, {GRABCUT_ITERATIONS} iterations, centered rectangle with a {share} margin per side"


GRABCUT_DESCRIPTION = grabcut_description(GRABCUT_MARGIN) + " (the box of IEM's released initial square)"
GRABCUT_WIDE_DESCRIPTION = grabcut_description(GRABCUT_WIDE_MARGIN) + " (nearly the whole image)"


def _iem_factory(name: str, context: MethodContext) -> Method:
    return IEMMethod(name, iem_config(name, context.config_overrides), context.device)


register_method("paper", _iem_factory, "IEM, the paper's protocol: squares 44, 78, 92, keep the highest error")
register_method("released", _iem_factory, "IEM, the authors' released code: one 78 px square")
register_method("best", _iem_factory, "IEM, the most accurate settings (docs/beyond.md): 44 px square, GrabCut from its mask and the box, energy picks, one more iteration")
register_method(
    "grabcut",
    lambda name, context: GrabCutMethod(name, GRABCUT_MARGIN, context.seed, GRABCUT_DESCRIPTION),
    GRABCUT_DESCRIPTION,
)
register_method(
    "grabcut_wide",
    lambda name, context: GrabCutMethod(name, GRABCUT_WIDE_MARGIN, context.seed, GRABCUT_WIDE_DESCRIPTION),
    GRABCUT_WIDE_DESCRIPTION,
)
register_method("square", lambda name, context: SquareMethod(), SquareMethod.description)
register_method("all", lambda name, context: AllForegroundMethod(), AllForegroundMethod.description)
