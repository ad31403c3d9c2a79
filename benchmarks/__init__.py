"""Speed and memory benchmarks of iem (not part of the library).

Run each one from the repository root as a module, e.g.::

    python -m benchmarks.speed --help

``naive`` is the baseline the engine is compared with, ``speed`` the side-by-side ratio,
``paper_protocol`` the 1,020-image protocol with and without early exit, ``memory`` peak RSS
against the number of images, and ``gpu_check`` the CUDA check. Results land in
``benchmarks/results/*.json``; ``docs/speed.md`` tabulates them.
"""

import os

# Benchmarks time the compiled CPU loop: compile it at first use rather than running the torch
# loop while it compiles in the background (iem.core.kernels.ready).
os.environ.setdefault("IEM_NUMBA", "wait")
# iem first, before any script imports torch: its import sets the OpenMP idle policy users
# get, which acts only before torch loads.
import iem  # noqa: E402,F401
