"""iem: unsupervised foreground segmentation by Inpainting Error Maximization (CVPR 2021).

The public surface::

    from iem import IEMConfig, IEMResult, segment, segment_batch, inpaint, metrics, segment_files

The names are imported at their first use (PEP 562), so that ``import iem`` does not load
torch: the ``iem`` command (:mod:`iem._command`) loads its modules where it can turn a Ctrl-C
during those seconds into one line, as it does later.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any, List

# iem's CPU work runs in Python threads with one torch thread each (iem.core.engine.run_chunks);
# OpenMP workers that spin while idle would take the cores those threads need, and the small
# multi-threaded operations around them are then many times slower on a busy machine
# (docs/speed.md, "The first run"). OpenMP reads this when torch loads, so only before that.
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if TYPE_CHECKING:  # pragma: no cover
    from iem import metrics
    from iem.api import inpaint, segment, segment_batch
    from iem.config import IEMConfig
    from iem.core.engine import IEMResult
    from iem.distributed import segment_files
    from iem.pipeline import RunSummary

__version__ = "0.1.0"

#: Each public name and the module that defines it (``segment_files`` with ``client=`` and
#: fsspec URLs too, from :mod:`iem.distributed`; Dask and fsspec are imported only when used).
_PUBLIC = {
    "IEMConfig": "iem.config",
    "IEMResult": "iem.core.engine",
    "RunSummary": "iem.pipeline",
    "inpaint": "iem.api",
    "segment": "iem.api",
    "segment_batch": "iem.api",
    "segment_files": "iem.distributed",
}

__all__ = [
    "IEMConfig",
    "IEMResult",
    "RunSummary",
    "inpaint",
    "metrics",
    "segment",
    "segment_batch",
    "segment_files",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name == "metrics":
        value: Any = importlib.import_module("iem.metrics")
    elif name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    else:
        raise AttributeError(f"module 'iem' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
