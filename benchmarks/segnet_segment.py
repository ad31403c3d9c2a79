"""Inference at scale: ``iem segment --model flowers`` against IEM itself, on Flowers-102 photos.

The same photos (the first ``--photos`` of ``flowers102/images`` in name order, copied to a
temporary folder) are segmented by the command ``iem segment DIR -o OUT`` once per method, one
after the other in separate processes (start-up included, masks written as PNG at the photo's
size), and the images per second are printed side by side with their ratio to IEM:

- ``flowers``: the shipped network (``--model flowers``);
- ``flowers+refine``: IEM started from the network's masks (``--model flowers --refine``);
- ``paper``: IEM with the paper's settings (``--preset paper``);
- ``best``: the command's default (IEM then GrabCut, ``--preset best``).

Example::

    python -m benchmarks.segnet_segment                         # 300 photos, every method
    python -m benchmarks.segnet_segment --photos 8 --methods flowers,paper --out /tmp/s.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

from benchmarks import common

#: Method name -> extra arguments of ``iem segment``.
METHODS = {
    "flowers": ["--model", "flowers"],
    "flowers+refine": ["--model", "flowers", "--refine"],
    "paper": ["--preset", "paper"],
    "best": ["--preset", "best"],
}
#: Every rate is also given as a ratio to this method's.
REFERENCE = "paper"


def flowers102(data: Optional[str]) -> Path:
    """The Flowers-102 image folder beside the benchmark data."""
    folder = common.data_dir(data) / "flowers102" / "images"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: image folder not found")
    return folder


def run_method(name: str, photos: Path, out: Path) -> Dict[str, Any]:
    """``iem segment photos -o out`` with the method's arguments, timed in a child process."""
    command = [sys.executable, "-m", "iem", "segment", str(photos), "-o", str(out), "--quiet", *METHODS[name]]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(common.REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    with common.timed() as timing:
        done = subprocess.run(command, check=False, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{name}: iem segment failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    masks = len(list(out.glob("*.png")))
    return {"method": name, "masks": masks, "images_per_s": masks / timing.wall_s, "timing": timing.to_dict()}


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.segnet_segment",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__[__doc__.index("Example"):],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--photos", type=int, default=300, help="How many Flowers-102 photos (the first in name order).")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"Comma-separated, among {', '.join(METHODS)}.")
    parser.add_argument("--data", default=None, help="Folder holding flowers102/ (default: ../shared/data).")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "segnet_segment.json")
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose among {list(METHODS)}")
    sources = sorted(flowers102(args.data).glob("*.jpg"))[: args.photos]
    rows = []
    with tempfile.TemporaryDirectory(prefix="iem-segnet-bench-") as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        for source in sources:
            shutil.copy(source, photos / source.name)
        for name in methods:
            rows.append(run_method(name, photos, Path(tmp) / f"out-{name.replace('+', '-')}"))
    reference = next((r["images_per_s"] for r in rows if r["method"] == REFERENCE), None)
    table = common.Table(["method", "masks", "seconds", "images/s", f"x {REFERENCE}"])
    for row in rows:
        row["ratio_to_reference"] = row["images_per_s"] / reference if reference else None
        table.add(row["method"], row["masks"], row["timing"]["wall_s"], row["images_per_s"], row["ratio_to_reference"] or "-")
    print(table)
    report = {"config": {"photos": len(sources), "methods": methods}, "rows": rows, "environment": common.environment()}
    common.write_json(report, args.out)
    return report


if __name__ == "__main__":
    main()
