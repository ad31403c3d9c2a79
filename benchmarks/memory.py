"""Peak memory (RSS) of segmenting N images, for several N: it must not grow with N.

Each measurement runs in a fresh Python process, so that one run's allocations cannot hide
another's, and reads that process's peak resident set size (``ru_maxrss``; the parent also
reads ``RUSAGE_CHILDREN`` as a cross-check). Two paths are measured:

* ``batch``: ``iem.segment_batch`` on an in-memory ``(N, 3, 128, 128)`` tensor of random
  images. The input itself is ``N x 196,608`` bytes (1.97 GB at N = 10,000) and the returned
  masks ``N x 16,384`` bytes, both necessarily proportional to N; what must stay flat is the
  growth of the peak beyond the input and the output (the engine's working memory, bounded
  by its chunking).
* ``files``: ``iem.pipeline.segment_files`` on a folder of N image files (hard links to a few
  random PNGs, so the disk holds little), writing a mask per image. Nothing is held per
  image, so the whole peak must stay flat.

Random images are fine for memory; ``--iterations 2`` keeps the runs short (the working set
of an iteration does not depend on how many follow it).

Example::

    python -m benchmarks.memory                      # N = 100, 1,000, 10,000
    python -m benchmarks.memory --counts 10 100 --out /tmp/memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from benchmarks import common

MODES = ("batch", "files")
DEFAULT_COUNTS = (100, 1000, 10_000)
#: The target of issue 3: the whole peak of a run stays below this.
LIMIT_BYTES = 2 * 1024**3
#: Distinct random images behind the hard links of the ``files`` mode.
DISTINCT_FILES = 64
#: ``ru_maxrss`` is in kilobytes on Linux (bytes on macOS).
RU_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024
BYTES_PER_MIB = 1024**2


def _rss_peak() -> int:
    """This process's peak RSS so far, in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * RU_MAXRSS_UNIT


def child(mode: str, count: int, iterations: int, size: int, threads: int, folder: Optional[str]) -> Dict[str, Any]:
    """One measurement, run inside the child process; returns what it saw."""
    import torch

    import iem

    common.set_threads(threads)
    config = iem.IEMConfig.paper(iterations=iterations)
    after_import = _rss_peak()
    if mode == "batch":
        images = common.synthetic_batch(count, size)
        before = _rss_peak()
        with common.timed() as timing:
            result = iem.segment_batch(images, config, device="cpu")
        input_bytes = images.numel() * images.element_size()
        output_bytes = sum(t.numel() * t.element_size() for t in (result.masks, result.scores, result.init, result.iterations))
        processed = int(result.masks.shape[0])
        del images, result
    else:
        from iem.pipeline import segment_files

        assert folder is not None
        before = _rss_peak()
        with tempfile.TemporaryDirectory(prefix="iem-memory-out-") as out, common.timed() as timing:
            summary = segment_files(folder, out, config, size=size, device="cpu", progress=False)
        if summary.failed:
            raise RuntimeError(f"segment_files failed on {summary.failed} images: {summary.failures[0].line()}")
        input_bytes = output_bytes = 0
        processed = summary.segmented
    if processed != count:
        raise RuntimeError(f"{mode}: {processed} images processed, {count} expected")
    peak = _rss_peak()
    return {
        "mode": mode,
        "images": count,
        "peak_rss": peak,
        "rss_after_import": after_import,
        "rss_before_run": before,
        "input_bytes": input_bytes,
        "output_bytes": output_bytes,
        # What the run added to the peak beyond its input and output: the working memory.
        "growth_beyond_io": peak - before - output_bytes,
        "timing": timing.to_dict(),
        "torch_threads": torch.get_num_threads(),
    }


def make_folder(root: Path, count: int, sources: List[Path]) -> Path:
    """A folder of ``count`` image files, hard links to ``sources`` (copies where links fail)."""
    folder = root / f"n{count}"
    folder.mkdir()
    for i in range(count):
        target = folder / f"img{i:06d}.png"
        source = sources[i % len(sources)]
        try:
            os.link(source, target)
        except OSError:
            target.write_bytes(source.read_bytes())
    return folder


def random_pngs(root: Path, count: int, size: int) -> List[Path]:
    from PIL import Image

    from iem.io.write import save_image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = root / f"source{i:03d}.png"
        save_image(Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)), path, "PNG")
        paths.append(path)
    return paths


def run_child(mode: str, count: int, iterations: int, size: int, threads: int, folder: Optional[Path]) -> Dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.memory", "--child", mode, "--counts", str(count),
               "--iterations", str(iterations), "--size", str(size), "--threads", str(threads)]
    if folder is not None:
        command += ["--folder", str(folder)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    done = subprocess.run(command, cwd=common.REPO, check=False, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"child {mode} N={count} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    record = json.loads(done.stdout.strip().splitlines()[-1])
    # Cross-check: the largest peak among the children waited for so far.
    record["rusage_children_max"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * RU_MAXRSS_UNIT
    return record


def verdict(records: List[Dict[str, Any]], mode: str) -> Dict[str, Any]:
    """Whether a mode's peak stays under the limit and flat in N (growth within 64 MiB + 5%)."""
    rows = sorted((r for r in records if r["mode"] == mode), key=lambda r: r["images"])
    if not rows:
        return {}
    key = "growth_beyond_io" if mode == "batch" else "peak_rss"
    values = [r[key] for r in rows]
    spread = max(values) - min(values)
    flat = spread <= 64 * BYTES_PER_MIB + 0.05 * min(values)
    under = all(v < LIMIT_BYTES for v in values)
    return {"measure": key, "spread_bytes": spread, "flat": flat, "under_limit": under}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.memory",
        description="Peak RSS of segmenting N images (in-memory batch and streamed files), one fresh process "
        "per measurement; shows that memory does not grow with N.",
        epilog="Examples:\n  python -m benchmarks.memory\n  python -m benchmarks.memory --counts 10 100 --modes batch "
        "--out /tmp/memory.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--counts", type=int, nargs="+", default=list(DEFAULT_COUNTS), help="numbers of images N")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="paths to measure")
    parser.add_argument("--iterations", type=int, default=2, help="IEM iterations (default 2)")
    parser.add_argument("--size", type=int, default=common.SIZE, help="image side in pixels (default 128)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the children (default 1: memory barely depends on it, and one thread suffers least on a shared machine)")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "memory.json", help="JSON output")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.counts) < 1 or args.iterations < 0 or args.threads < 1:
        parser.error("--counts and --threads must be >= 1, --iterations >= 0")

    if args.child:
        print(json.dumps(child(args.child, args.counts[0], args.iterations, args.size, args.threads, args.folder)))
        return 0

    env = common.environment(args.threads)  # at the start: the commit of the code that runs
    records = []
    with tempfile.TemporaryDirectory(prefix="iem-memory-in-") as tmp:
        root = Path(tmp)
        sources = random_pngs(root, DISTINCT_FILES, args.size) if "files" in args.modes else []
        for mode in args.modes:
            for count in args.counts:
                folder = make_folder(root, count, sources) if mode == "files" else None
                record = run_child(mode, count, args.iterations, args.size, args.threads, folder)
                records.append(record)
                mib = {k: record[k] / BYTES_PER_MIB for k in ("peak_rss", "input_bytes", "output_bytes", "growth_beyond_io")}
                print(f"{mode:5s} N={count:6d}: peak {mib['peak_rss']:7.0f} MiB, input {mib['input_bytes']:6.0f} MiB, "
                      f"output {mib['output_bytes']:5.0f} MiB, growth beyond input+output {mib['growth_beyond_io']:5.0f} MiB, "
                      f"{record['timing']['wall_s']:.1f} s", flush=True)

    verdicts = {mode: verdict(records, mode) for mode in args.modes}
    for mode, v in verdicts.items():
        print(f"{mode}: {v['measure']} spread {v['spread_bytes'] / BYTES_PER_MIB:.0f} MiB over N = {sorted(args.counts)}; "
              f"flat: {v['flat']}, under 2 GiB: {v['under_limit']}")
    result = {
        "benchmark": "memory",
        "counts": sorted(args.counts),
        "iterations": args.iterations,
        "size": args.size,
        "preset": "paper",
        "limit_bytes": LIMIT_BYTES,
        "records": records,
        "verdicts": verdicts,
        "environment": env,
    }
    print(f"wrote {common.write_json(result, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
