"""The IEM iteration loop compiled for the CPU (optional; the ``fast`` extra, numba).

:func:`optimize` runs every iteration of each run (image x initial mask) in one compiled
loop, the twin of the torch loop :func:`iem.core.engine.optimize_masks` with the closed-form
gradient of :func:`iem.core.objective.objective_gradient`. Three things make it several times
cheaper per step than the same arithmetic as torch operations:

- ``K([X * M, M])`` follows the mask: a step changes a few dozen pixels, and each changed
  pixel adds or removes its window of K (kept in float64, so that the sum does not drift),
  instead of the whole image being filtered again;
- ``K^T`` of the upstream gradient is needed only where the mask may move (the boundary,
  Eq. 9): the product with ``rows.T`` is done on every row, the one with ``cols`` only there;
- the pixel-wise work between the two is one pass over memory, not a few dozen.

Results agree with the torch loop up to float rounding (the tests compare masks, iteration
counts and early exits). The kernels release the GIL, so chunks run in parallel threads.
The torch formulas stay the definition and the path on other devices and dtypes.

Compilation takes 15 to 20 s, once per installation (numba caches the machine code on disk).
So that no run waits for it, and so that the masks of a run never depend on when it ended,
the loop is chosen once per process (:func:`ready`), by ``IEM_NUMBA``:

- ``auto`` (default): the compiled loop if its compilation is known to be cached; otherwise
  the torch loop for the whole process, while a background process (niced, detached, one at a
  time) compiles and caches the loop for the next ones (``python -m iem.core.kernels`` does
  the same in the foreground, e.g. right after installing);
- ``wait``: the compiled loop, compiled in this process at its first use if needed;
- ``off`` (or ``IEM_NO_NUMBA=1``): the torch loop.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Tuple

import numpy as np
import torch

if TYPE_CHECKING:  # pragma: no cover
    from iem.config import IEMConfig

#: Values of ``IEM_NUMBA`` (see the module's docstring).
POLICIES = ("auto", "wait", "off")
#: Whether numba is installed and not switched off (the compiled loop can be used at all).
AVAILABLE = (
    importlib.util.find_spec("numba") is not None
    and os.environ.get("IEM_NO_NUMBA") != "1"
    and os.environ.get("IEM_NUMBA", "auto") != "off"
)
#: This process's choice, made once by :func:`ready` (None: not made yet).
_READY: Optional[bool] = None
_READY_LOCK = threading.Lock()


def usable(x: torch.Tensor, config: "IEMConfig") -> bool:
    """Whether :func:`optimize` runs ``config`` on images like ``x`` in this process.

    It can (float32 on CPU, the closed-form objective of Eq. 7, numba installed) and it does
    (:func:`ready`).
    """
    return AVAILABLE and config.closed_form and x.device.type == "cpu" and x.dtype == torch.float32 and ready()


def policy() -> str:
    """``IEM_NUMBA``: ``auto`` (default), ``wait`` or ``off``."""
    value = os.environ.get("IEM_NUMBA", "auto").strip().lower() or "auto"
    if value not in POLICIES:
        raise ValueError(f"IEM_NUMBA must be one of {POLICIES}, got {value!r}")
    return value


def ready() -> bool:
    """Whether this process uses the compiled loop; decided at the first call, then fixed.

    With the ``auto`` policy and no cached compilation, the answer is False for the life of
    the process and a background compilation starts (:func:`compile_in_background`): the
    compiled and torch loops agree only up to float rounding, so a process never switches
    loops halfway through its images.
    """
    global _READY
    with _READY_LOCK:
        if _READY is None:
            if not AVAILABLE:
                _READY = False
            elif policy() == "wait":
                _READY = True
            else:
                _READY = compiled()
                if not _READY:
                    compile_in_background()
        return _READY


def _marker() -> Path:
    """The file that records a finished, cached compilation of this very loop.

    Its name hashes what numba's cache depends on (the loop's source file and its time stamp,
    numba's and Python's versions), so an edited or reinstalled iem, or another numba, is not
    mistaken for a compiled one. It lives in the user's cache folder.
    """
    source = Path(__file__).with_name("compiled_loop.py")
    stat = source.stat()
    try:
        numba_version = importlib.metadata.version("numba")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - numba without metadata
        numba_version = "unknown"
    key = f"{source.resolve()}|{stat.st_mtime_ns}|{stat.st_size}|{numba_version}|{sys.version}"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "iem" / f"compiled-loop-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def compiled() -> bool:
    """Whether the loop's compilation is cached (by :func:`compile_now`), so using it is quick."""
    try:
        record = json.loads(_marker().read_text(encoding="utf-8"))
        return any(Path(record["numba_cache"]).glob("compiled_loop._optimize-*.nbi"))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def compile_now() -> Path:
    """Compile the loop (numba caches it on disk) and record it; returns the record's path.

    Runs a tiny problem through :func:`optimize`, so that exactly the argument types of real
    runs are compiled.
    """
    from iem.config import IEMConfig
    from iem.core import compiled_loop
    from iem.core.filters import LinearFilter

    config = IEMConfig.paper(iterations=2)
    side = config.kernel_size
    images = torch.zeros(1, 3, side, side)
    masks = torch.zeros(1, 1, side, side, dtype=torch.bool)
    masks[..., : side // 2, :] = True
    filt = LinearFilter.build(side, side, config, torch.float32, "cpu")
    numerator = torch.zeros(1, 3, side, side)
    denominator = torch.ones(1, 1, side, side)
    optimize(images, masks, numerator, denominator, filt.rows.matrix, filt.cols.matrix, config, 4, 1.0)
    from iem.io.write import write_text  # every file iem writes goes through iem.io.write (parents included)

    return write_text(_marker(), json.dumps({"numba_cache": str(compiled_loop._optimize._cache._cache_path)}))


def compile_in_background() -> Optional[subprocess.Popen]:
    """Start ``python -m iem.core.kernels`` as a detached, low-priority process (None if it
    cannot be started: the torch loop simply goes on being used)."""
    env = dict(os.environ, IEM_NUMBA="wait")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "iem.core.kernels", "--background"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    except OSError:
        return None


def diagonals(matrix: torch.Tensor) -> Tuple[np.ndarray, int]:
    """A banded matrix by rows of its band: ``D[i, d] = A[i, i + d - w]`` (0 off the matrix).

    Returns:
        ``(D, w)`` with ``D`` of shape ``(n, 2 w + 1)`` float64 and ``w`` the band's radius,
        the largest ``|i - j|`` of a non-zero ``A[i, j]``.
    """
    dense = matrix.detach().to("cpu", torch.float64).numpy()
    rows, cols = np.nonzero(dense)
    radius = int(np.abs(rows - cols).max()) if rows.size else 0
    n = dense.shape[0]
    band = np.zeros((n, 2 * radius + 1))
    for d in range(2 * radius + 1):
        i = np.arange(max(0, radius - d), min(n, n + radius - d))
        band[i, d] = dense[i, i + d - radius]
    return band, radius


def optimize(
    images: torch.Tensor,
    masks: torch.Tensor,
    whole_numerator: torch.Tensor,
    whole_denominator: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    config: "IEMConfig",
    min_count: int,
    floor: float,
    fixed: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """All IEM iterations of each run in one compiled loop; twin of ``engine.optimize_masks``.

    Each run keeps ``K([X * M, M])`` in float64 and updates it from the pixels its mask
    changed, instead of filtering the whole image at every step, and sends the gradient back
    through ``K^T`` only at the pixels that may move (the boundary). The arithmetic is that of
    :func:`iem.core.objective.objective_gradient` up to float rounding.

    Args:
        images: ``(N, C, H, W)`` float32; masks: ``(N, 1, H, W)`` bool initial masks.
        whole_numerator, whole_denominator: from ``ImageConstants``.
        rows, cols: the filter's ``(H, H)`` and ``(W, W)`` matrices (``K(Y) = rows @ Y @ cols.T``).
        config: the settings (closed-form objective).
        min_count: smoothing threshold on the 3x3 count (the pixel itself excluded for the
            paper's rule).
        floor: the normalisers' floor.
        fixed: optional ``(N, 2, H, W)`` bool pinned pixels, set again after every step; the
            initial masks are expected to respect them already.

    Returns:
        ``(final masks (N, 1, H, W) bool, iterations computed (N,) long)``.
    """
    n, _, height, width = images.shape
    rows_r, wr = diagonals(rows)
    cols_r, _ = diagonals(rows.T)
    rows_c, wc = diagonals(cols)
    cols_c, _ = diagonals(cols.T)
    from iem.core.compiled_loop import _optimize  # numba is imported only here

    x = images.contiguous().numpy()
    final = np.empty((n, height, width), dtype=np.bool_)
    # Without guidance an empty array of the same type keeps one compiled signature.
    pins = np.zeros((0, 2, 1, 1), dtype=np.bool_) if fixed is None else fixed.to(torch.bool).contiguous().numpy()
    iterations = np.empty(n, dtype=np.int64)
    _optimize(
        x,
        whole_numerator.contiguous().numpy(),
        whole_denominator.reshape(height, width).contiguous().numpy(),
        images.sum(dim=(2, 3), dtype=torch.float64).numpy(),
        masks.reshape(n, height, width).contiguous().numpy(),
        rows_r,
        cols_r,
        wr,
        np.ascontiguousarray(rows_c.T),
        cols_c,
        wc,
        float(config.epsilon),
        float(config.lambda_),
        float(floor),
        int(config.iterations),
        bool(config.boundary_only),
        bool(config.smoothing),
        int(min_count),
        config.smoothing_rule == "paper",
        bool(config.early_exit),
        pins,
        fixed is not None,
        final,
        iterations,
    )
    return torch.from_numpy(final).view(n, 1, height, width), torch.from_numpy(iterations)


def main(argv: Optional[list] = None) -> int:
    """``python -m iem.core.kernels``: compile and cache the loop now (about 15 to 20 s)."""
    args = sys.argv[1:] if argv is None else argv
    if importlib.util.find_spec("numba") is None:
        print("numba is not installed (pip install 'iem[fast]'): the torch loop is used", file=sys.stderr)
        return 1
    lock = None
    if "--background" in args:
        if hasattr(os, "nice"):
            os.nice(10)  # the run that started it keeps the CPU
        lock = _exclusive_lock()
        if lock is False or compiled():
            return 0  # another process is compiling, or has compiled meanwhile
    marker = compile_now()
    if "--background" not in args:
        print(f"compiled and cached the CPU loop ({marker})")
    return 0


def _exclusive_lock() -> object:
    """Hold a lock beside the marker for the life of the process; False if another holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock, at worst two compilations
        return None
    path = _marker().with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Nothing is written to it: the descriptor stays open (and locked) until the process ends.
    descriptor = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        return False
    return descriptor


if __name__ == "__main__":
    sys.exit(main())
