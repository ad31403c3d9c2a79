"""Training the segmentation network on IEM's pseudo-labels (section 3.3, 4.2).

The paper's recipe: per-pixel binary cross-entropy, Adam with a constant learning rate of
1e-3, mini-batches of 128, 50 epochs. Two things are added for small collections, both
documented in ``docs/phase2.md``: a random horizontal flip of each image (with its label), and
a floor on the number of optimiser steps per epoch (the batch shrinks when the collection is
too small to give ``min_steps_per_epoch`` batches of 128, so that a few hundred images still
get hundreds of updates; at the paper's scale the batch stays 128).

A checkpoint is written atomically after every epoch; calling :func:`train_segnet` again with
the same data and settings resumes after the last finished epoch, and asking for more epochs
extends a finished run (with the paper's constant learning rate; a one-cycle schedule is a
function of the total number of steps, so there the epochs are part of the run's identity).

For CPUs, two options make training cheaper without changing the network: ``precision="bf16"``
(autocast to bfloat16, about 1.8 times the images per second on a CPU with AVX-512 BF16) and
``schedule="onecycle"`` (warm up to a higher peak and anneal, reaching the accuracy in a few
epochs instead of 50). Both are measured in ``benchmarks/segnet_train.py`` and
``docs/phase2.md``; the defaults stay the paper's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from iem.core.engine import resolve_device
from iem.segnet.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from iem.segnet.model import SegNet
from iem.segnet.select import SELECTIONS

PathLike = Union[str, os.PathLike]

#: Large odd multiplier mixing the run seed with the epoch number for the epoch's generator.
_EPOCH_SEED_STRIDE = 1_000_003
#: Learning-rate schedules: the paper's constant rate, or one cycle (warm-up then cosine decay).
SCHEDULES = ("constant", "onecycle")
#: Arithmetic of the forward pass: float32 (the paper's), or bfloat16 autocast.
PRECISIONS = ("fp32", "bf16")
#: One cycle: share of the steps spent warming up, and the start / end rates as fractions of the peak
#: (the values of :class:`torch.optim.lr_scheduler.OneCycleLR`'s defaults).
ONECYCLE_WARMUP = 0.3
ONECYCLE_START = 1 / 25
ONECYCLE_END = 1 / 25e4


class CheckpointMismatch(CheckpointError):
    """An existing checkpoint was trained on other data or settings and cannot be resumed."""


@dataclass(frozen=True)
class TrainSettings:
    """How the network is trained; the defaults are the paper's recipe (section 4.2).

    Attributes:
        epochs: Passes over the pseudo-labels. Paper: 50.
        batch_size: Largest mini-batch. Paper: 128.
        min_steps_per_epoch: Floor on optimiser steps per epoch: the batch becomes
            ``min(batch_size, ceil(N / min_steps_per_epoch))`` for ``N`` pseudo-labels. 1 gives
            the paper's fixed batch whatever the collection size.
        learning_rate: Adam's constant step size. Paper: 1e-3.
        top_k: Keep this many masks with the highest inpainting error (paper: 8,000 of
            about 10,000 images); exclusive with ``top_fraction``.
        top_fraction: Keep this share of the masks instead (0.8, the paper's 8,000 of CUB's
            10,000 training images, when neither is set).
        selection: How the masks are ranked before ``top_k`` / ``top_fraction`` keeps the
            first: ``"error"`` (the paper: highest final inpainting error) or ``"agreement"``
            (beyond the paper: highest IoU with GrabCut from the box,
            :func:`iem.segnet.select.box_agreement`).
        flip: Random horizontal flip of each training image and its label.
        seed: Seed of the weight initialisation, the shuffling and the flips.
        schedule: ``"constant"`` (the paper) or ``"onecycle"``: ``learning_rate`` is then the
            peak, reached after 30 % of the steps (cosine warm-up from peak/25) and annealed
            with a cosine to nearly zero at the last step.
        precision: ``"fp32"`` (the paper) or ``"bf16"``: the forward pass under bfloat16
            autocast (the loss and the weights stay float32).
    """

    epochs: int = 50
    batch_size: int = 128
    min_steps_per_epoch: int = 16
    learning_rate: float = 1e-3
    top_k: Optional[int] = None
    top_fraction: Optional[float] = 0.8
    selection: str = "error"
    flip: bool = True
    seed: int = 0
    schedule: str = "constant"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.top_k is not None and self.top_fraction is not None:
            # An explicit count wins over the default share.
            object.__setattr__(self, "top_fraction", None)
        checks = [
            (isinstance(self.epochs, int) and self.epochs >= 0, "epochs must be an integer >= 0"),
            (isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size must be an integer >= 1"),
            (
                isinstance(self.min_steps_per_epoch, int) and self.min_steps_per_epoch >= 1,
                "min_steps_per_epoch must be an integer >= 1",
            ),
            (math.isfinite(self.learning_rate) and self.learning_rate > 0, "learning_rate must be > 0"),
            (self.top_k is None or (isinstance(self.top_k, int) and self.top_k >= 1), "top_k must be an integer >= 1"),
            (
                self.top_fraction is None or 0.0 < float(self.top_fraction) <= 1.0,
                "top_fraction must be in (0, 1]",
            ),
            (self.top_k is not None or self.top_fraction is not None, "one of top_k and top_fraction is needed"),
            (self.selection in SELECTIONS, f"selection must be one of {', '.join(SELECTIONS)}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"TrainSettings: {message}")

    def effective_batch_size(self, n: int) -> int:
        """The mini-batch used for ``n`` training images (see ``min_steps_per_epoch``)."""
        return max(1, min(self.batch_size, math.ceil(n / self.min_steps_per_epoch)))

    def learning_rate_at(self, step: int, total: int) -> float:
        """Adam's step size for optimiser step ``step`` (0-based) of ``total``.

        Constant for the paper's schedule. One cycle: cosine from ``lr * ONECYCLE_START`` up to
        ``lr`` over the first ``ONECYCLE_WARMUP`` of the steps, then cosine down to
        ``lr * ONECYCLE_END`` at the last step.
        """
        if self.schedule == "constant":
            return self.learning_rate
        peak = self.learning_rate
        rise = max(1, round(ONECYCLE_WARMUP * total))
        if step < rise:
            low, high, t = peak * ONECYCLE_START, peak, step / rise
        else:
            low, high, t = peak, peak * ONECYCLE_END, (step - rise) / max(1, total - 1 - rise)
        return high + (low - high) * (1 + math.cos(math.pi * min(1.0, t))) / 2

    def to_dict(self) -> Dict[str, Any]:
        """The settings as a plain dictionary."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainSettings":
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


@dataclass
class TrainResult:
    """What :func:`train_segnet` did.

    Attributes:
        model: The trained network, in eval mode, on the training device.
        losses: Mean training loss of every epoch so far (resumed epochs included).
        start_epoch: Epochs already done in the checkpoint when this call began.
        batch_size: The mini-batch that was used.
        epoch_seconds: Time of every epoch so far, ``{"wall": s, "cpu": s}`` (the process's CPU
            time: on a shared machine the cost of the epoch on free cores); epochs of a
            checkpoint written before this was recorded are absent.
    """

    model: SegNet
    losses: List[float]
    start_epoch: int
    batch_size: int
    epoch_seconds: List[Dict[str, float]] = field(default_factory=list)


def mean_epoch_seconds(epoch_seconds: Sequence[Mapping[str, float]]) -> Tuple[float, float]:
    """Mean wall and CPU seconds of the timed epochs (:attr:`TrainResult.epoch_seconds`).

    Raises:
        ValueError: no epoch was timed.
    """
    if not epoch_seconds:
        raise ValueError("no timed epoch")
    return tuple(sum(x[key] for x in epoch_seconds) / len(epoch_seconds) for key in ("wall", "cpu"))


def data_fingerprint(images: torch.Tensor, labels: torch.Tensor, settings: TrainSettings) -> str:
    """Hex digest of the training tensors and every setting except ``epochs``.

    Two runs with the same fingerprint can continue each other; the number of epochs may grow
    (except under a one-cycle schedule, whose rate at every step depends on the total).
    """
    digest = hashlib.sha256()
    for tensor in (images, labels):
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    recipe = {k: v for k, v in settings.to_dict().items() if k != "epochs" or settings.schedule != "constant"}
    # Options at their paper values are left out, so checkpoints written before they existed still resume.
    for key, paper in (("schedule", "constant"), ("precision", "fp32"), ("selection", "error")):
        if recipe[key] == paper:
            del recipe[key]
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    return digest.hexdigest()


def _epoch_order(n: int, settings: TrainSettings, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffled indices and flip decisions of one epoch, a function of (seed, epoch) only.

    Deriving them from the epoch number, not from a running generator, is what makes a resumed
    run take exactly the batches an uninterrupted one would have taken.
    """
    generator = torch.Generator().manual_seed(settings.seed * _EPOCH_SEED_STRIDE + epoch)
    order = torch.randperm(n, generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    return order, flips & settings.flip


def _new_model(settings: TrainSettings, image_size: int) -> SegNet:
    # A private RNG stream: the initial weights depend on the seed only, not on earlier calls.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        return SegNet(image_size=image_size)


def train_segnet(
    images: torch.Tensor,
    labels: torch.Tensor,
    checkpoint: PathLike,
    settings: Optional[TrainSettings] = None,
    device: str = "auto",
    resume: bool = True,
    progress: bool = False,
    meta: Optional[Mapping[str, Any]] = None,
) -> TrainResult:
    """Fit :class:`SegNet` to pseudo-labels with per-pixel BCE and Adam (section 4.2).

    Args:
        images: ``(N, 3, S, S)`` float in [-1, 1].
        labels: ``(N, 1, S, S)`` bool or 0/1 targets (the selected IEM masks).
        checkpoint: File written after every epoch (atomically) and at the end.
        settings: The recipe; :class:`TrainSettings` defaults when None.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        resume: Continue from ``checkpoint`` when it holds a run on the same data and
            settings. When False an existing file is overwritten.
        progress: Show a tqdm bar with the running loss.
        meta: Extra plain data stored in the checkpoint (files, IEM settings, ...).

    Returns:
        :class:`TrainResult`.

    Raises:
        CheckpointMismatch: ``resume`` and the checkpoint belongs to other data or settings.
        CheckpointError: ``resume`` and the checkpoint cannot be read.
        ValueError: bad shapes or an empty training set.
    """
    settings = settings or TrainSettings()
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"train_segnet: expected (N, 3, S, S) images, got {tuple(images.shape)}")
    labels = labels.reshape(labels.shape[0], 1, *labels.shape[-2:])
    if labels.shape[0] != images.shape[0] or labels.shape[-2:] != images.shape[-2:]:
        raise ValueError(f"train_segnet: labels {tuple(labels.shape)} do not match images {tuple(images.shape)}")
    n = images.shape[0]
    if n == 0:
        raise ValueError("train_segnet: no training images")
    checkpoint = Path(checkpoint)
    dev = resolve_device(device)
    batch_size = settings.effective_batch_size(n)
    fingerprint = data_fingerprint(images, labels, settings)

    model = _new_model(settings, images.shape[-1]).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    losses: List[float] = []
    epoch_seconds: List[Dict[str, float]] = []
    start = 0
    if resume and checkpoint.exists():
        state = read_checkpoint(checkpoint)
        if state.get("fingerprint") != fingerprint or state.get("hparams") != model.hparams():
            raise CheckpointMismatch(
                f"{checkpoint}: holds a run on other images or settings; choose another file or start afresh"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        losses = [float(x) for x in state["losses"]]
        epoch_seconds = [dict(x) for x in state.get("epoch_seconds", [])]
        start = int(state["epoch"])

    # Small collections fit on the device whole; moving them once saves a copy per batch.
    data_x = images.to(dev, torch.float32)
    data_y = labels.to(dev, torch.float32)
    steps = math.ceil(n / batch_size)
    base_state = {
        "hparams": model.hparams(),
        "settings": settings.to_dict(),
        "fingerprint": fingerprint,
        "batch_size": batch_size,
        "train_size": n,
        "meta": dict(meta or {}),
    }

    def save(epoch: int) -> None:
        save_checkpoint(
            checkpoint,
            {
                **base_state,
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": _to_cpu(optimizer.state_dict()),
                "epoch": epoch,
                "losses": list(losses),
                "epoch_seconds": [dict(x) for x in epoch_seconds],
                "complete": epoch >= settings.epochs,
            },
        )

    bar = tqdm(
        total=max(0, settings.epochs - start) * steps,
        disable=not progress,
        desc="train",
        unit="step",
        dynamic_ncols=True,
    )
    model.train()
    try:
        for epoch in range(start, settings.epochs):
            order, flips = _epoch_order(n, settings, epoch)

            def show(mean_loss: float, epoch: int = epoch) -> None:
                bar.update(1)
                bar.set_postfix(epoch=f"{epoch + 1}/{settings.epochs}", loss=f"{mean_loss:.4f}")

            rates = [settings.learning_rate_at(epoch * steps + i, settings.epochs * steps) for i in range(steps)]
            wall, cpu = time.perf_counter(), time.process_time()
            losses.append(
                _run_epoch(model, optimizer, data_x, data_y, order, flips, batch_size, show, rates, settings.precision)
            )
            epoch_seconds.append({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu})
            save(epoch + 1)
    finally:
        bar.close()
    if start >= settings.epochs and not (resume and checkpoint.exists()):
        save(start)
    model.eval()
    return TrainResult(model=model, losses=losses, start_epoch=start, batch_size=batch_size, epoch_seconds=epoch_seconds)


def _run_epoch(
    model: SegNet,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    order: torch.Tensor,
    flips: torch.Tensor,
    batch_size: int,
    on_step: Callable[[float], None],
    rates: Sequence[float],
    precision: str = "fp32",
) -> float:
    """One pass over the data in ``order``, flipping the chosen images; returns the mean loss.

    ``rates`` holds the learning rate of each step; ``on_step`` receives the running mean loss
    after every optimiser step.
    """
    device = images.device
    running, seen = 0.0, 0
    for rate, start in zip(rates, range(0, len(order), batch_size)):
        for group in optimizer.param_groups:
            group["lr"] = rate
        index = order[start : start + batch_size]
        x, y = images[index.to(device)], labels[index.to(device)]
        flip = flips[index].to(device).view(-1, 1, 1, 1)
        x = torch.where(flip, x.flip(-1), x)
        y = torch.where(flip, y.flip(-1), y)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = model(x)
        loss = F.binary_cross_entropy_with_logits(logits.float(), y)  # per-pixel BCE (section 4.2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running += float(loss.detach()) * len(index)
        seen += len(index)
        on_step(running / seen)
    return running / seen


def _to_cpu(value: Any) -> Any:
    """A copy of a nested optimizer state with every tensor on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_cpu(v) for v in value)
    return value
