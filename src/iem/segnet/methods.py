"""Phase-2 methods for the benchmark registry: ``segnet`` and ``segnet+refine``.

``segnet`` is the network's prediction thresholded at 0.5 (the "SegNet mask" column of the
paper's figures); ``segnet+refine`` runs IEM from that mask instead of the initial squares
(section 3.3, "return to the first phase"). Both read the checkpoint given to ``iem bench
--model``. Importing this module registers them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from iem import IEMConfig
from iem.bench.methods import Method, MethodContext, MethodError, iem_config, register_method
from iem.core.engine import resolve_device
from iem.segnet.checkpoint import CheckpointError
from iem.segnet.predict import THRESHOLD, load_model, predict, refine

SEGNET = "segnet"
SEGNET_REFINE = "segnet+refine"
#: The IEM preset the refinement starts from (its ``init_sizes`` are unused: the network's
#: mask is the only initial mask).
REFINE_PRESET = "paper"


def _load(context: MethodContext, name: str) -> torch.nn.Module:
    if context.model is None:
        raise ValueError(f"the {name} method needs a trained network: pass --model PATH")
    try:
        return load_model(context.model, device=resolve_device(context.device))
    except CheckpointError as err:
        raise ValueError(str(err)) from None


class SegNetMethod(Method):
    """Masks predicted by the phase-2 network (a column of the figure, as in the paper's)."""

    in_figure = True

    def __init__(self, model: torch.nn.Module, path: Optional[Path] = None) -> None:
        self.name = SEGNET
        self.model = model
        where = f" {Path(path).name}" if path is not None else ""
        self.description = f"IEM+SegNet: the network{where} trained on IEM pseudo-labels, probability > {THRESHOLD}"

    def segment(self, images: torch.Tensor) -> torch.Tensor:
        try:
            return predict(self.model, images)[:, 0] > THRESHOLD
        except ValueError as err:
            raise MethodError(str(err)) from None


class SegNetRefineMethod(Method):
    """IEM started from the network's masks.

    The settings are ``config`` when given, else the paper preset with the context's overrides.
    """

    def __init__(self, model: torch.nn.Module, context: MethodContext, config: Optional[IEMConfig] = None) -> None:
        self.name = SEGNET_REFINE
        self.model = model
        self.device = context.device
        self.config = config if config is not None else iem_config(REFINE_PRESET, context.config_overrides)
        where = f" {Path(context.model).name}" if context.model is not None else ""
        self.description = f"IEM+SegNet+refine: IEM ({REFINE_PRESET} settings) started from the mask of the network{where}"

    def segment(self, images: torch.Tensor) -> torch.Tensor:
        try:
            return refine(self.model, images, self.config, device=self.device).masks[:, 0]
        except ValueError as err:
            raise MethodError(str(err)) from None


def _segnet_factory(name: str, context: MethodContext) -> Method:
    return SegNetMethod(_load(context, name), context.model)


def _refine_factory(name: str, context: MethodContext) -> Method:
    return SegNetRefineMethod(_load(context, name), context)


def register() -> None:
    """Add ``segnet`` and ``segnet+refine`` to the benchmark registry (idempotent)."""
    register_method(SEGNET, _segnet_factory, "IEM+SegNet: masks of the network given by --model", replace=True)
    register_method(
        SEGNET_REFINE, _refine_factory, "IEM+SegNet+refine: IEM started from the masks of --model", replace=True
    )


register()
