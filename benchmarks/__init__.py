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
# The scripts import torch before iem, so iem's own default (idle OpenMP workers sleep) would
# come too late: set it here, where it still acts, so the benchmarks time what users run.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
