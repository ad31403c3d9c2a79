"""Two versions of the engine side by side: another commit's ``iem`` against this checkout's.

Each side runs ``iem.segment_batch`` in its own process (``PYTHONPATH`` pointing at its
``src/``; the other commit's is extracted with ``git archive`` into ``~/.cache/iem/engine-ab``,
where numba's cache of its compiled loop survives between runs) on the same images, one torch
thread, and the processes alternate (baseline, checkout, checkout, baseline, ...) so that the
load of a shared machine falls on both alike. Each is timed by its process CPU time, the
compiled loop loaded and warmed up first. Reports the median CPU seconds of each side, their
ratio, and whether the masks, chosen squares and iteration counts are identical.

The images are every image of Weizmann Horse and GrabCut under the paper protocol (128 px),
``--images`` of them (default all 377).

Example::

    python -m benchmarks.engine_ab                                # main against this checkout
    python -m benchmarks.engine_ab --baseline HEAD~3 --presets paper --images 40 --repeats 1
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

#: What a worker returns besides its timing (masks, squares, iterations).
COMPARED = ("masks", "init", "iterations")


def worker(batch: Path, preset: str, out: Path) -> None:
    """In the side's own process: time ``segment_batch`` once, after a warm-up, and save the result."""
    os.environ["IEM_NUMBA"] = "wait"
    import iem  # noqa: PLC0415 - from this side's src/, set by the parent's PYTHONPATH

    torch.set_num_threads(1)
    images = torch.load(batch)
    config = iem.IEMConfig.preset(preset)
    iem.segment_batch(images[:1], config.replace(iterations=2), device="cpu")  # compile or load, allocate
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    result = iem.segment_batch(images, config, device="cpu")
    cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
    torch.save({"cpu_s": cpu, "wall_s": wall, **{k: getattr(result, k) for k in COMPARED}}, out)


def baseline_tree(rev: str, repo: Path) -> Path:
    """``src/`` of commit ``rev``, extracted once into the user's cache folder (numba's cache of
    its compiled loop lives beside it, so a second comparison starts at once); ``rev`` may
    also be a folder that holds ``iem/`` (a ``src/`` already on disk)."""
    if (Path(rev) / "iem").is_dir():
        return Path(rev).resolve()
    sha = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=repo, check=True,
                         capture_output=True, text=True).stdout.strip()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "iem" / "engine-ab" / sha
    if not (base / "src" / "iem").is_dir():
        base.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", "--format=tar", sha, "src"], cwd=repo, check=True,
                                 capture_output=True).stdout
        with tempfile.TemporaryDirectory(dir=base) as scratch:
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(scratch, filter="data")
            os.replace(Path(scratch) / "src", base / "src")
    return base / "src"


def run_side(src: Path, batch: Path, preset: str, scratch: Path) -> Dict[str, Any]:
    out = scratch / "result.pt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(Path(__file__).resolve().parents[1])]),
               OMP_NUM_THREADS="1", IEM_NUMBA="wait")
    subprocess.run([sys.executable, "-m", "benchmarks.engine_ab", "--worker", str(batch), preset, str(out)],
                   env=env, check=True, cwd=scratch)
    return torch.load(out)


def main(argv: Optional[List[str]] = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["--worker"]:
        worker(Path(args_in[1]), args_in[2], Path(args_in[3]))
        return 0
    from benchmarks import common  # noqa: PLC0415 - the parent only (imports this checkout's iem)

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.engine_ab",
        description="Time iem.segment_batch of another commit against this checkout's, side by side in "
        "alternating processes (one thread, process CPU time), and check that masks are identical.",
        epilog="Examples:\n  python -m benchmarks.engine_ab\n  python -m benchmarks.engine_ab --baseline HEAD~3 "
        "--presets paper --images 40 --repeats 1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--baseline", default="main", help="commit, branch or src/ folder to compare with (default main)")
    parser.add_argument("--candidate", default=None,
                        help="commit, branch or src/ folder to compare against the baseline (default: this checkout's src/)")
    parser.add_argument("--presets", nargs="+", default=["paper", "released"], help="presets (default paper released)")
    parser.add_argument("--images", type=int, default=None, help="first N images of horse + GrabCut (default all 377)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side and preset (default 3)")
    parser.add_argument("--data", default=None, help="folder holding weizmann_horse/ and grabcut/ (default: found)")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "engine_ab.json", help="JSON output")
    args = parser.parse_args(args_in)
    if args.repeats < 1 or (args.images is not None and args.images < 1):
        parser.error("--images and --repeats must be >= 1")

    env = common.environment(1)
    root = common.data_dir(args.data)
    paths = [p for name in common.DATASETS for p in common.image_paths(root, name)][: args.images]
    candidate = common.REPO / "src" if args.candidate is None else baseline_tree(args.candidate, common.REPO)
    sides = {"baseline": baseline_tree(args.baseline, common.REPO), "checkout": candidate}
    report: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        batch = scratch / "batch.pt"
        torch.save(common.load_batch(paths), batch)
        for preset in args.presets:
            times: Dict[str, List[float]] = {side: [] for side in sides}
            results: Dict[str, Dict[str, Any]] = {}
            for repeat in range(args.repeats):
                order = list(sides) if repeat % 2 == 0 else list(sides)[::-1]
                for side in order:
                    results[side] = run_side(sides[side], batch, preset, scratch)
                    times[side].append(results[side]["cpu_s"])
                    print(f"{preset:9s} {side:9s} run {repeat + 1}: {results[side]['cpu_s']:6.2f} s CPU "
                          f"({results[side]['wall_s']:6.2f} s wall)", flush=True)
            median = {side: statistics.median(values) for side, values in times.items()}
            same = {k: bool(torch.equal(results["baseline"][k], results["checkout"][k])) for k in COMPARED}
            report[preset] = {
                "cpu_s": times,
                "median_cpu_s": median,
                "ratio": median["baseline"] / median["checkout"],
                "identical": same,
                "agreement": common.mask_agreement(results["baseline"]["masks"], results["checkout"]["masks"]),
            }
            print(f"{preset}: baseline {median['baseline']:.2f} s, checkout {median['checkout']:.2f} s of CPU "
                  f"(median of {args.repeats}): {report[preset]['ratio']:.2f}x; identical masks "
                  f"{same['masks']}, squares {same['init']}, iterations {same['iterations']} "
                  f"({common.format_agreement(report[preset]['agreement'])})", flush=True)
    common.write_json({"benchmark": "engine_ab", "baseline": args.baseline, "candidate": args.candidate, "images": len(paths),
                       "presets": report, "environment": env}, args.out)
    identical = all(all(r["identical"].values()) for r in report.values())
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
