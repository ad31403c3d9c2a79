"""Exporting a trained network to TorchScript or ONNX, with a parity check against PyTorch.

Both exports take ``(B, 3, 128, 128)`` float images in [-1, 1] (any batch size) and return
``(B, 1, 128, 128)`` foreground probabilities: the sigmoid is part of the exported graph, so a
consumer only needs to threshold at 0.5.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import warnings
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np
import torch
from torch import nn

from iem.io import atomic_write

PathLike = Union[str, os.PathLike]

FORMATS = ("onnx", "torchscript")
#: ONNX operator set of the export (opset 17 has every operator the network uses natively).
ONNX_OPSET = 17
#: Names of the exported graph's input and output.
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
#: Largest absolute difference in probability tolerated between an export and PyTorch.
PARITY_TOLERANCE = 1e-4


class ExportError(Exception):
    """An export failed or does not reproduce the original network; ``str(err)`` is one line."""


class Probabilities(nn.Module):
    """The network followed by a sigmoid: what the exported files compute."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(images))


def example_input(model: nn.Module, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """Random images in [-1, 1] of the size ``model`` was built for (for tracing and checks)."""
    size = int(getattr(model, "image_size", 128))
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=generator) * 2 - 1


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporters' advice that does not apply here.

    Tracing warns that instance norm's shape checks become constants (the network has no
    data-dependent control flow); ONNX export notes that instance norm uses the input's
    statistics (which is what instance norm does); recent PyTorch marks TorchScript and the
    TorchScript-based ONNX exporter as deprecated (both still work, and the newer ONNX exporter
    needs the extra ``onnxscript`` package). Every export is checked numerically by
    :func:`export_model` instead.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def export_torchscript(model: nn.Module, out: PathLike) -> Path:
    """Trace ``model`` (plus sigmoid) on the CPU and save it as TorchScript, atomically."""
    wrapped = Probabilities(model).cpu().eval()
    buffer = io.BytesIO()
    with _quiet_exporter(), torch.no_grad():
        traced = torch.jit.trace(wrapped, example_input(model))
        torch.jit.save(traced, buffer)
    atomic_write(out, lambda handle: handle.write(buffer.getvalue()))
    return Path(out)


def export_onnx(model: nn.Module, out: PathLike, opset: int = ONNX_OPSET) -> Path:
    """Export ``model`` (plus sigmoid) to ONNX with a dynamic batch axis, atomically."""
    wrapped = Probabilities(model).cpu().eval()
    buffer = io.BytesIO()
    with _quiet_exporter(), torch.no_grad():
        torch.onnx.export(
            wrapped,
            (example_input(model),),
            buffer,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    atomic_write(out, lambda handle: handle.write(buffer.getvalue()))
    return Path(out)


def run_export(path: PathLike, fmt: str, images: torch.Tensor) -> torch.Tensor:
    """Run an exported file on ``images`` (CPU) and return its probabilities as a tensor."""
    if fmt == "torchscript":
        with _quiet_exporter():
            module = torch.jit.load(str(path), map_location="cpu")
        with torch.no_grad():
            return module(images.cpu()).float()
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (output,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.cpu().numpy().astype(np.float32)})
        return torch.from_numpy(output)
    raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


def parity_error(model: nn.Module, path: PathLike, fmt: str, images: Optional[torch.Tensor] = None) -> float:
    """Largest absolute difference between the export's and PyTorch's probabilities."""
    images = example_input(model, batch=3, seed=1) if images is None else images
    with torch.no_grad():
        reference = Probabilities(model).cpu().eval()(images.cpu())
    return float((run_export(path, fmt, images) - reference).abs().max())


def export_model(model: nn.Module, out: PathLike, fmt: str, check: bool = True) -> float:
    """Export ``model`` to ``fmt`` (``"onnx"`` or ``"torchscript"``) and verify it.

    The original model is left on its device and in its mode; the export is done on a CPU copy.

    Returns:
        The parity error (0.0 when ``check`` is False).

    Raises:
        ValueError: unknown format.
        ExportError: the exporter failed, or the export differs from PyTorch by more than
            :data:`PARITY_TOLERANCE`.
        OSError: ``out`` cannot be written (:func:`iem.io.atomic_write`).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    cpu_model = copy.deepcopy(model).cpu().eval()
    exporter = export_onnx if fmt == "onnx" else export_torchscript
    try:
        exporter(cpu_model, out)
    except ImportError as err:
        raise ExportError(f"{out}: {fmt} export needs an optional package ({err}); install iem[export]") from None
    except OSError:
        raise  # the file cannot be written: the caller names the path and the reason
    except Exception as err:  # the exporters raise many types; the user needs one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f"{out}: {fmt} export failed ({first})") from None
    if not check:
        return 0.0
    try:
        error = parity_error(cpu_model, out, fmt)
    except ImportError as err:
        raise ExportError(f"{out}: checking the {fmt} export needs onnxruntime ({err}); install iem[export]") from None
    if not error <= PARITY_TOLERANCE:
        raise ExportError(f"{out}: {fmt} export differs from PyTorch by {error:.2e} (> {PARITY_TOLERANCE:.0e})")
    return error
