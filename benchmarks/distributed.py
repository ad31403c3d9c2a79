"""Scale-out, side by side: ``iem segment`` on one process against a LocalCluster of 1 and 2
worker processes, on the same photos, in one run; and the cost of one task on the cluster.

Runs, in this order, each into a fresh output folder and each timed with the machine's load
(``common.timed``):

* ``single``: today's single-process pipeline (:func:`iem.pipeline.segment_files`), with as many
  torch threads as cores, after a first small run that loads the compiled kernels;
* ``cluster-1`` and ``cluster-2``: the same call with ``client=`` a LocalCluster of 1 and 2
  worker processes (``--cluster local:N``; the cores shared among the workers). The cluster's
  start-up (worker processes importing torch) is timed apart and is not part of the rate; a
  first small task warms each worker up.

Every run's masks must be byte-identical to the single-process ones. Then, on the 2-worker
cluster:

* ``task round trip``: trivial tasks submitted and gathered one after the other, the
  scheduler's fixed cost of one task (serialisation, scheduling, result);
* ``empty share``: a share whose outputs all exist (a resumed run's task): the per-task cost of
  iem's own bookkeeping (scratch folder, existence checks) beyond the scheduler's.

Example::

    python -m benchmarks.distributed                           # 96 Weizmann Horse photos
    python -m benchmarks.distributed --images 32 --out /tmp/distributed.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import iem
from benchmarks import common
from iem import distributed
from iem.distributed import segment_files

#: Trivial tasks timed for the scheduler's per-task cost.
ROUND_TRIPS = 200
#: Images in the task that warms up each worker (imports, compiled kernels) before timing.
WARMUP_IMAGES = 2


def _masks(out: Path) -> Dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.mask.png"))}


def _noop(value: int) -> int:
    return value


def _run(name: str, photos: Path, work: Path, config: iem.IEMConfig, client: Any, task_size: Optional[int]) -> Dict[str, Any]:
    out = work / name
    summary, timing = common.run_timed(
        lambda: segment_files(photos, out, config=config, progress=False, client=client, task_size=task_size)
    )
    row = {
        "run": name,
        "images": summary.segmented,
        "failed": summary.failed,
        "images_per_s": summary.segmented / timing.wall_s,
        "task_size": summary.settings.get("task_size"),
        **timing.to_dict(),
    }
    row["masks"] = _masks(out)
    return row


def _warm_up(client: Any, photos: Path, work: Path, config: iem.IEMConfig) -> None:
    """One share per worker, so imports and compiled kernels are loaded before timing."""
    files = sorted(photos.iterdir())[:WARMUP_IMAGES]
    items = [(str(path), path.name) for path in files]
    settings = distributed.ShareSettings(config)
    for index, worker in enumerate(client.nthreads()):
        client.submit(
            distributed.segment_share, items, str(work / f"warm-{index}"), settings, workers=[worker], pure=False
        ).result()


def _round_trip_s(client: Any, count: int) -> float:
    started = time.perf_counter()
    for index in range(count):
        client.submit(_noop, index, pure=False).result()
    return (time.perf_counter() - started) / count


def _empty_share_s(client: Any, items: List[Any], out: Path, config: iem.IEMConfig, count: int) -> float:
    settings = distributed.ShareSettings(config)
    started = time.perf_counter()
    for _ in range(count):
        result = client.submit(distributed.segment_share, items, str(out), settings, pure=False).result()
        assert result.skipped == len(items)
    return (time.perf_counter() - started) / count


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96, help="Weizmann Horse photos (cycled).")
    parser.add_argument("--iterations", type=int, default=None, help="IEM iterations [paper: 150].")
    parser.add_argument("--task-size", type=int, default=None, help="Images per task [automatic].")
    parser.add_argument("--data", default=None, help="Folder holding weizmann_horse/ (default: ../shared/data).")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "distributed.json")
    args = parser.parse_args(argv)

    config = iem.IEMConfig.paper() if args.iterations is None else iem.IEMConfig.paper(iterations=args.iterations)
    work = Path(tempfile.mkdtemp(prefix="iem-bench-distributed-"))
    try:
        photos = work / "photos"
        photos.mkdir()
        for index, path in enumerate(common.cycled_paths(args.images, common.data_dir(args.data))):
            os.symlink(path, photos / f"{index:04d}{path.suffix}")
        warm = work / "warm-photos"
        warm.mkdir()
        for path in sorted(photos.iterdir())[:WARMUP_IMAGES]:
            os.symlink(os.readlink(path), warm / path.name)
        segment_files(warm, work / "warm-single", config=config, progress=False)  # imports, compiled kernels
        rows = [_run("single", photos, work, config, None, None)]
        startup: Dict[str, float] = {}
        overhead: Dict[str, float] = {}
        for workers in (1, 2):
            started = time.perf_counter()
            with distributed.connect(f"local:{workers}") as client:
                client.wait_for_workers(workers)
                _warm_up(client, photos, work, config)
                startup[f"cluster-{workers}"] = time.perf_counter() - started
                rows.append(_run(f"cluster-{workers}", photos, work, config, client, args.task_size))
                if workers == 2:
                    overhead["task_round_trip_s"] = _round_trip_s(client, ROUND_TRIPS)
                    done = sorted(photos.iterdir())[:16]
                    overhead["empty_share_16_images_s"] = _empty_share_s(
                        client, [(str(p), p.name) for p in done], work / "single", config, 20
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    reference = rows[0].pop("masks")
    for row in rows[1:]:
        row["identical_masks"] = row.pop("masks") == reference
    base = rows[0]["images_per_s"]
    for row in rows:
        row["ratio_to_single"] = row["images_per_s"] / base

    table = common.Table(["run", "images", "task size", "s", "images/s", "ratio", "identical", "machine busy", "others busy"])
    for row in rows:
        table.add(
            row["run"], row["images"], row["task_size"] or "-", row["wall_s"], row["images_per_s"],
            row["ratio_to_single"], row.get("identical_masks", "-"), row["machine_busy"], row["others_busy"],
        )
    print(table)
    print(f"cluster start-up incl. warm-up (s): {', '.join(f'{k} {v:.1f}' for k, v in startup.items())}")
    print(
        f"per task: scheduler round trip {overhead['task_round_trip_s'] * 1e3:.1f} ms; "
        f"a share of 16 finished images {overhead['empty_share_16_images_s'] * 1e3:.1f} ms"
    )
    result = {
        "environment": common.environment(),
        "config": {"images": args.images, "iterations": config.iterations, "task_size": args.task_size},
        "runs": rows,
        "startup_s": startup,
        "overhead": overhead,
    }
    common.write_json(result, args.out)
    return result


if __name__ == "__main__":
    main()
