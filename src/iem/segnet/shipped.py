"""Networks shipped with the package, loaded by a bare name (``load_model("flowers")``).

A bare name (letters, digits, ``_`` and ``-`` only, given as a string) is reserved for the
shipped networks in ``iem/segnet/models/<name>.pt``; anything else (a string with a folder or a
suffix, or a :class:`pathlib.Path`) is a checkpoint file of the user's, so ``./flowers`` loads a
file called ``flowers`` from the current folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List, Union

from iem.segnet.checkpoint import CheckpointError

PathLike = Union[str, os.PathLike]

#: Folder of the shipped checkpoints (package data, listed in pyproject.toml).
MODELS_DIR = Path(__file__).resolve().parent / "models"
#: Suffix of a shipped checkpoint; a model card ``<name>.md`` lies beside it.
MODEL_SUFFIX = ".pt"
_BARE_NAME = re.compile(r"[A-Za-z0-9_-]+")


class UnknownModelName(CheckpointError):
    """A bare name that is not among the shipped networks; the message lists them."""


def shipped_models() -> List[str]:
    """Names of the networks shipped with the package, sorted."""
    return sorted(p.stem for p in MODELS_DIR.glob(f"*{MODEL_SUFFIX}"))


def is_bare_name(spec: PathLike) -> bool:
    """Whether ``spec`` names a shipped network rather than a file: a string without folder or suffix."""
    return isinstance(spec, str) and _BARE_NAME.fullmatch(spec) is not None


def resolve_model(spec: PathLike) -> Path:
    """The checkpoint file ``spec`` stands for: a shipped network's file for a bare name, else ``spec``.

    Raises:
        UnknownModelName: ``spec`` is a bare name that is not shipped.
    """
    if not is_bare_name(spec):
        return Path(spec)
    path = MODELS_DIR / f"{spec}{MODEL_SUFFIX}"
    if not path.is_file():
        names = ", ".join(shipped_models()) or "none"
        raise UnknownModelName(
            f"{spec}: no shipped model of that name (shipped: {names}); give a checkpoint file as a path, e.g. ./{spec}"
        )
    return path
