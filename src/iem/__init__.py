"""iem: unsupervised foreground segmentation by Inpainting Error Maximization (CVPR 2021).

The public surface::

    from iem import IEMConfig, IEMResult, segment, segment_batch, inpaint, metrics, segment_files
"""

import os
import sys

# iem's CPU work runs in Python threads with one torch thread each (iem.core.engine.run_chunks);
# OpenMP workers that spin while idle would take the cores those threads need, and the small
# multi-threaded operations around them are then many times slower on a busy machine
# (docs/speed.md, "The first run"). OpenMP reads this when torch loads, so only before that.
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from iem import metrics
from iem.api import inpaint, segment, segment_batch
from iem.config import IEMConfig
from iem.core.engine import IEMResult
from iem.pipeline import RunSummary
# segment_files with client= and fsspec URLs too; Dask and fsspec are imported only when used.
from iem.distributed import segment_files

__version__ = "0.1.0"

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
