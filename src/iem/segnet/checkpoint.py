"""Checkpoints of phase 2, written atomically (a reader never sees half a file) and read safely."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any, Dict, Union

import torch

from iem.io import atomic_write

PathLike = Union[str, os.PathLike]

#: Marks a file as an IEM SegNet checkpoint, and its layout version.
CHECKPOINT_FORMAT = "iem-segnet"
CHECKPOINT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint is missing, unreadable or of another kind; ``str(err)`` names the file."""


def save_checkpoint(path: PathLike, state: Dict[str, Any]) -> None:
    """Save ``state`` (tensors, numbers, strings, lists, dicts only) atomically, tagged."""
    tagged = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}
    atomic_write(path, lambda handle: torch.save(tagged, handle))


def _load_reason(err: Exception) -> str:
    """PyTorch's reason in a few words, without its advice (which may be unsafe here)."""
    text = " ".join(str(err).split())
    if text.startswith("Weights only load failed"):
        return "it holds Python objects besides tensors and plain data; not loaded, as that could run code"
    first = text.split(". ")[0].rstrip(".")
    return first or type(err).__name__


def read_checkpoint(path: PathLike) -> Dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, on the CPU.

    Only plain data is unpickled (``weights_only=True``), so a file from elsewhere cannot run
    code.

    Raises:
        CheckpointError: the file is missing, unreadable, or not an IEM SegNet checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):
        # Checked first: for such a file PyTorch's own message is a bare pickle detail
        # ("101") or advice to load without weights_only, which is wrong for text or a photo.
        what = "an empty file" if path.stat().st_size == 0 else "not a PyTorch archive (damaged, or another kind of file)"
        raise CheckpointError(f"{path}: not a checkpoint: {what}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged or foreign file
        raise CheckpointError(f"{path}: not a readable checkpoint ({_load_reason(err)})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an IEM SegNet checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')} is not supported")
    return state


#: What a slim checkpoint keeps: enough to rebuild and describe the network, not to resume it.
SLIM_KEYS = ("hparams", "model", "settings", "epoch", "losses", "epoch_seconds", "batch_size", "train_size", "complete")
#: Entries of ``meta`` that stay (the per-file lists of a large collection are dropped).
SLIM_META = ("collection_size", "iem_config")


def slim_checkpoint(source: PathLike, target: PathLike, **notes: Any) -> Dict[str, Any]:
    """Write a copy of a checkpoint without its optimiser state and file lists (for shipping).

    The result loads with :func:`iem.segnet.load_model` like the original but cannot resume
    training; ``notes`` (plain data) are stored under ``meta``. Returns the state written.

    Raises:
        CheckpointError: ``source`` is not a readable checkpoint.
    """
    state = read_checkpoint(source)
    meta = {k: v for k, v in state.get("meta", {}).items() if k in SLIM_META}
    slim = {k: state[k] for k in SLIM_KEYS if k in state}
    slim["meta"] = {**meta, **notes}
    save_checkpoint(target, slim)
    return read_checkpoint(target)
