"""The paper's phase-2 recipe on a GPU machine that holds none of the data.

``python -m iem.segnet.experiment`` runs phase 2 in one process where the photos are. A GPU
machine that receives only a small copy of the repository needs the work split in three:

1. ``pack`` (here, on the CPU): IEM over the collection with each preset (cached and resumable,
   the same cache as the experiment's), the agreement of every mask with the box's GrabCut, and
   a pack: ``labels.npz`` (names, masks, scores, agreement, IEM settings, a digest of every
   working copy) and the original photo files that the planned runs learn from, split into
   folders ``photos0``, ``photos1``, ... of at most ``--part-mb`` each (a transfer limit);
2. ``probe`` and ``train`` (there): the photos are read with the library's own reader, their
   working copies checked against the digests, and each planned run (preset of the labels,
   ranking, share kept, seed) trains with :func:`iem.segnet.pipeline.train_on_labels`, the
   paper's recipe unless told otherwise, several runs side by side on one GPU; every finished
   run's network comes back in ``runs.tar`` (without optimiser state);
3. ``score`` (here): IEM, the network and the refined network on a labelled folder with
   :func:`iem.segnet.experiment.score_model`; ``python -m iem.segnet.summary`` then compares the
   runs and their seeds.

Example::

    python -m benchmarks.segnet_recipe pack ../shared/data/flowers102/images --out .recipe \\
        --runs paper:error:0.8,paper:agreement:0.6,best:agreement:0.6
    python -m benchmarks.segnet_recipe probe .recipe --workers 1,2,3          # on the GPU
    python -m benchmarks.segnet_recipe train .recipe --out $OUT --seeds 0,1,2 --budget 480
    tar -xf runs.tar -C runs/recipe
    python -m benchmarks.segnet_recipe score runs/recipe/*/ --root ../shared/data/flowers17
    python -m iem.segnet.summary runs/recipe/*/ --out runs/recipe/summary.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from iem import IEMConfig
from iem.config import PRESETS
from iem.segnet.checkpoint import read_checkpoint, slim_checkpoint
from iem.segnet.data import PROTOCOL_SIZE, collect_image_paths, load_collection
from iem.segnet.experiment import MODEL_FILE, score_model
from iem.segnet.model import SegNet
from iem.segnet.pipeline import select_labels, train_on_labels
from iem.segnet.pseudo import PseudoLabels, cached_per_image, iem_pseudo_labels
from iem.segnet.select import SELECTIONS, box_agreement
from iem.segnet.summary import preset_of
from iem.segnet.train import TrainSettings
from benchmarks import common

LABELS_FILE = "labels.npz"
PHOTOS_PREFIX = "photos"
RUNS_TAR = "runs.tar"
#: The data one transfer may carry beside the repository (the GPU machines used here take 64 MiB in all).
DEFAULT_PART_MB = 55.0


@dataclass(frozen=True)
class RunSpec:
    """One planned training run: whose labels, how ranked, how many kept, which seed."""

    preset: str
    selection: str
    fraction: float
    seed: int = 0

    @classmethod
    def parse(cls, text: str) -> "RunSpec":
        """``preset:selection:fraction`` (e.g. ``paper:error:0.8``)."""
        try:
            preset, selection, fraction = text.split(":")
            spec = cls(preset, selection, float(fraction))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected preset:selection:fraction") from None
        if spec.preset not in PRESETS or spec.selection not in SELECTIONS or not 0 < spec.fraction <= 1:
            raise argparse.ArgumentTypeError(f"{text!r}: unknown preset or selection, or a share outside (0, 1]")
        return spec

    @property
    def labels(self) -> str:
        """The pseudo-labels the run learns from, e.g. ``paper-error80``."""
        return f"{self.preset}-{self.selection}{round(100 * self.fraction)}"

    def name(self, epochs: int) -> str:
        return f"{self.labels}-e{epochs}-s{self.seed}"

    def settings(self, epochs: int, precision: str) -> TrainSettings:
        # Everything else is the paper's recipe (TrainSettings' defaults).
        return TrainSettings(
            epochs=epochs, selection=self.selection, top_fraction=self.fraction, seed=self.seed, precision=precision
        )


def parse_runs(text: str) -> List[RunSpec]:
    return [RunSpec.parse(part) for part in text.split(",") if part]


def working_digest(image: torch.Tensor) -> str:
    """Digest of one working copy, to check that the GPU machine reads the photo identically."""
    return hashlib.sha256(image.contiguous().numpy().tobytes()).hexdigest()[:16]


def _labels_of(store: Any, preset: str) -> Tuple[PseudoLabels, torch.Tensor]:
    n = len(store["names"])
    side = int(store["side"])
    masks = np.unpackbits(store[f"masks_{preset}"], count=n * side * side).reshape(n, 1, side, side).astype(bool)
    labels = PseudoLabels(torch.from_numpy(masks), torch.from_numpy(store[f"scores_{preset}"]), str(store[f"key_{preset}"]))
    return labels, torch.from_numpy(store[f"agreement_{preset}"])


# ---------------------------------------------------------------------------------------- pack


def pack(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths, problems = collect_image_paths([args.collection])
    if problems or not paths:
        print("; ".join(problems) or f"{args.collection}: no image found")
        return 2
    start = time.perf_counter()
    collection = load_collection(paths, PROTOCOL_SIZE)
    print(f"read {len(collection.paths)} photos in {time.perf_counter() - start:.0f} s", flush=True)
    for error in collection.errors:
        print(f"skipped: {error}")
    names = [p.name for p in collection.paths]
    if len(set(names)) != len(names):
        # The pack finds photos by file name on the other machine.
        print(f"{args.collection}: two photos share a file name; pack a collection with unique names")
        return 2
    store: Dict[str, Any] = {
        "names": np.array(names),
        "side": np.array(PROTOCOL_SIZE),
        "digests": np.array([working_digest(image) for image in collection.images]),
    }
    needed = torch.zeros(len(collection.paths), dtype=torch.bool)
    for preset in sorted({spec.preset for spec in args.runs}):
        config = IEMConfig.preset(preset)
        cache = out / f"cache-{preset}.iem.npz"
        start = time.perf_counter()
        labels = iem_pseudo_labels(collection.images, collection.paths, config, cache, "cpu")
        print(f"IEM {preset}: {time.perf_counter() - start:.0f} s", flush=True)
        start = time.perf_counter()
        agreement = cached_per_image(
            cache, labels.key, "agreement",
            lambda: box_agreement(collection.images, labels.masks, config.grabcut_iterations, config.grabcut_border).numpy(),
        )
        print(f"agreement {preset}: {time.perf_counter() - start:.0f} s", flush=True)
        store.update({
            f"masks_{preset}": np.packbits(labels.masks.numpy().reshape(-1)),
            f"scores_{preset}": labels.scores.numpy(),
            f"agreement_{preset}": agreement,
            f"key_{preset}": np.array(labels.key),
            f"config_{preset}": np.array(json.dumps(config.to_dict(), default=list)),
        })
        for spec in args.runs:
            if spec.preset == preset:
                selected = select_labels(labels, spec.settings(1, "fp32"), torch.from_numpy(agreement))
                needed[selected] = True
                print(f"  {spec.labels}: {len(selected)} labels", flush=True)
    np.savez_compressed(out / LABELS_FILE, **store)
    for old in out.glob(PHOTOS_PREFIX + "*"):
        shutil.rmtree(old)
    part, size, limit = 0, 0, args.part_mb * 2**20
    for index in torch.nonzero(needed).reshape(-1).tolist():
        source = collection.paths[index]
        if size + source.stat().st_size > limit:
            part, size = part + 1, 0
        folder = out / f"{PHOTOS_PREFIX}{part}"
        folder.mkdir(exist_ok=True)
        shutil.copy2(source, folder / source.name)
        size += source.stat().st_size
    print(f"packed {int(needed.sum())} of {len(needed)} photos in {part + 1} folder(s) of at most {args.part_mb} MiB, "
          f"labels {(out / LABELS_FILE).stat().st_size / 2**20:.1f} MiB: {out}")
    return 0


# ------------------------------------------------------------------------------ decode photos


def decode_photos(pack_dir: Path, shared: Path) -> None:
    """Read the carried photos at the working size into ``shared`` for the worker processes, in
    the pack's order (NaN where a photo was not carried), and check them against the digests."""
    with np.load(pack_dir / LABELS_FILE, allow_pickle=False) as data:
        names, side, digests = [str(n) for n in data["names"]], int(data["side"]), data["digests"]
    found = {p.name: p for p in sorted(pack_dir.glob(PHOTOS_PREFIX + "*/*"))}
    present = [i for i, name in enumerate(names) if name in found]
    start = time.perf_counter()
    collection = load_collection([found[names[i]] for i in present], side)
    images = torch.full((len(names), 3, side, side), float("nan"))
    images[present] = collection.images
    differ = sum(working_digest(images[i]) != digests[i] for i in present)
    print(f"read {len(present)} of {len(names)} photos in {time.perf_counter() - start:.0f} s; "
          f"working copies differing from the packing machine's: {differ}", flush=True)
    torch.save(images, shared)


# ------------------------------------------------------------------------------------- workers


def _train_one(job: Dict[str, Any]) -> Dict[str, Any]:
    """One run in a worker process: select, train, write a slim copy of the network."""
    if job["deadline"] is not None and time.time() + job["estimate"] > job["deadline"]:
        return {"name": job["name"], "skipped": "time budget"}
    torch.set_num_threads(1)
    images = torch.load(job["shared"], mmap=True)
    with np.load(job["labels"], allow_pickle=False) as data:
        store = {k: data[k] for k in data.files}
    spec = RunSpec(**job["spec"])
    labels, agreement = _labels_of(store, spec.preset)
    settings = spec.settings(job["epochs"], job["precision"])
    selected = select_labels(labels, settings, agreement)
    if torch.isnan(images[selected]).any():
        return {"name": job["name"], "skipped": "a selected photo was not carried"}
    config = IEMConfig.from_dict(json.loads(str(store[f"config_{spec.preset}"])))
    paths = [Path(str(n)) for n in store["names"]]
    run_dir = Path(job["runs"]) / job["name"]
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = train_on_labels(
        images, paths, labels, selected, run_dir / MODEL_FILE, settings, config, agreement, job["device"], resume=False
    )
    seconds = time.perf_counter() - start
    slim_dir = Path(job["slim"]) / job["name"]
    slim_dir.mkdir(parents=True, exist_ok=True)
    slim_checkpoint(run_dir / MODEL_FILE, slim_dir / MODEL_FILE, trained_on=job["device_name"])
    epochs = len(result.losses)
    return {"name": job["name"], "seconds": seconds, "labels": len(selected), "epochs": epochs,
            "images_per_s": epochs * len(selected) / seconds, "last_loss": result.losses[-1]}


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else "cpu"


def _pool(workers: int) -> Any:
    return multiprocessing.get_context("spawn").Pool(workers)


# ------------------------------------------------------------------------------------- probe


def _probe_one(job: Dict[str, Any]) -> Dict[str, Any]:
    """Steps of the paper's recipe on the carried photos for a while: images per second."""
    torch.set_num_threads(1)
    images = torch.load(job["shared"], mmap=True)
    with np.load(job["labels"], allow_pickle=False) as data:
        store = {k: data[k] for k in data.files}
    labels, _ = _labels_of(store, job["preset"])
    present = torch.nonzero(~torch.isnan(images[:, 0, 0, 0])).reshape(-1)
    x = images[present].to(job["device"])
    y = labels.masks[present].to(job["device"], torch.float32)
    model = SegNet().to(job["device"])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch, done, start = job["batch"], 0, None
    step = 0
    while True:
        index = torch.randint(0, len(x), (batch,), device=x.device)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=job["precision"] == "bf16"):
            logits = model(x[index])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        float(loss.detach())  # the recipe reads the loss every step
        step += 1
        if step == job["warmup"]:
            start, done = time.perf_counter(), 0
        elif start is not None:
            done += batch
            if time.perf_counter() - start > job["seconds"]:
                return {"images_per_s": done / (time.perf_counter() - start)}


def probe(args: argparse.Namespace) -> int:
    shared = Path(tempfile.gettempdir()) / "iem-recipe-images.pt"
    decode_photos(Path(args.pack), shared)
    report: Dict[str, Any] = {"device": _device_name(args.device), "precision": args.precision, "workers": {}}
    job = {"shared": str(shared), "labels": str(Path(args.pack) / LABELS_FILE), "preset": args.preset,
           "device": args.device, "precision": args.precision, "warmup": args.warmup, "seconds": args.seconds,
           "batch": args.batch}
    for workers in args.workers:
        with _pool(workers) as pool:
            rates = pool.map(_probe_one, [job] * workers)
        total = sum(r["images_per_s"] for r in rates)
        report["workers"][workers] = total
        print(f"{workers} process(es) side by side: {total:.0f} images/s in all "
              f"(50 epochs of 6,551 labels: {50 * 6551 / total:.0f} s of one run when alone)", flush=True)
    _write_report(report, args.out, "probe.json")
    return 0


# ------------------------------------------------------------------------------------- train


def _write_report(report: Dict[str, Any], out: Optional[str], name: str) -> None:
    folder = Path(out or os.environ.get("OUT") or ".")
    folder.mkdir(parents=True, exist_ok=True)
    common.write_json(report, folder / name)


def _tar_runs(slim: Path, target: Path) -> None:
    partial = target.with_name(target.name + ".part")
    with tarfile.open(partial, "w") as tar:
        for model in sorted(slim.glob(f"*/{MODEL_FILE}")):
            tar.add(model, arcname=f"{model.parent.name}/{MODEL_FILE}")
    os.replace(partial, target)


def _from_probe(probe_file: Path, epochs: int, pack_dir: str, plan: Sequence[RunSpec]) -> Tuple[int, float]:
    """Runs side by side and the seconds one run takes, from ``probe``'s report: the process
    count with the highest total rate, and the largest planned run at its share of that rate
    (plus a tenth for reading the photos and writing checkpoints)."""
    rates = {int(k): v for k, v in json.loads(probe_file.read_text())["workers"].items()}
    workers = max(rates, key=rates.get)
    with np.load(Path(pack_dir) / LABELS_FILE, allow_pickle=False) as data:
        store = {k: data[k] for k in data.files}
    largest = max(len(select_labels(*_selection_inputs(store, spec))) for spec in plan)
    estimate = 1.1 * epochs * largest / (rates[workers] / workers)
    print(f"from the probe: {workers} runs side by side, about {estimate:.0f} s a run", flush=True)
    return workers, estimate


def _selection_inputs(store: Dict[str, Any], spec: RunSpec) -> Tuple[PseudoLabels, TrainSettings, torch.Tensor]:
    labels, agreement = _labels_of(store, spec.preset)
    return labels, spec.settings(1, "fp32"), agreement


def train(args: argparse.Namespace) -> int:
    begin = time.time()
    deadline = begin + args.budget if args.budget else None
    out = Path(args.out or os.environ.get("OUT") or "runs-recipe")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="iem-recipe-"))
    shared = work / "images.pt"
    decode_photos(Path(args.pack), shared)
    plan = [RunSpec(spec.preset, spec.selection, spec.fraction, seed) for seed in args.seeds for spec in args.runs]
    if args.probe:
        args.workers, args.estimate = _from_probe(Path(args.probe), args.epochs, args.pack, plan)
    report: Dict[str, Any] = {"benchmark": "segnet_recipe", "device": _device_name(args.device), "epochs": args.epochs,
                              "precision": args.precision, "workers": args.workers, "runs": [],
                              "environment": common.environment()}
    jobs = [{
        "name": spec.name(args.epochs), "spec": spec.__dict__, "epochs": args.epochs, "precision": args.precision,
        "shared": str(shared), "labels": str(Path(args.pack) / LABELS_FILE), "runs": str(work / "runs"),
        "slim": str(work / "slim"), "device": args.device, "device_name": report["device"],
        "deadline": deadline, "estimate": args.estimate,
    } for spec in plan]
    print(f"{len(jobs)} runs planned, {args.workers} side by side: {', '.join(j['name'] for j in jobs)}", flush=True)
    with _pool(args.workers) as pool:
        for result in pool.imap_unordered(_train_one, jobs):
            result["finished_after_s"] = time.time() - begin
            report["runs"].append(result)
            print(json.dumps(result), flush=True)
            if "seconds" in result:
                _tar_runs(work / "slim", out / RUNS_TAR)
            _write_report(report, str(out), "segnet_recipe.json")
    report["seconds"] = time.time() - begin
    _write_report(report, str(out), "segnet_recipe.json")
    print(f"done in {report['seconds']:.0f} s: {out / RUNS_TAR}")
    return 0


# ------------------------------------------------------------------------------------- score


def score(args: argparse.Namespace) -> int:
    for run_dir in args.runs:
        state = read_checkpoint(Path(run_dir) / MODEL_FILE)
        preset = preset_of(state["meta"]["iem_config"])
        start = time.perf_counter()
        bench = score_model(args.root, run_dir, IEMConfig.preset(preset), "cpu", False, preset)
        scores = ", ".join(f"{r.method} {100 * r.mean('iou'):.1f} / {100 * r.mean('strict_iou'):.1f}" for r in bench.results)
        print(f"{run_dir}: {scores} ({time.perf_counter() - start:.0f} s)", flush=True)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.segnet_recipe",
        description="Phase 2 with the paper's recipe on a GPU machine that holds no data: pack here, train there, score here.",
        epilog=__doc__[__doc__.index("Example"):],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("pack", help="IEM labels and the photos the runs need, in transferable parts")
    p.add_argument("collection", help="folder or files of the unlabelled collection")
    p.add_argument("--out", required=True, help="pack folder")
    p.add_argument("--runs", type=parse_runs, required=True, help="preset:selection:fraction,... (e.g. paper:error:0.8)")
    p.add_argument("--part-mb", type=float, default=DEFAULT_PART_MB, help=f"largest photo folder in MiB (default {DEFAULT_PART_MB})")
    p.set_defaults(run=pack)
    for name, fn, text in (("probe", probe, "images/s of training steps, alone and side by side"),
                           ("train", train, "the planned runs, several side by side")):
        p = commands.add_parser(name, help=text)
        p.add_argument("pack", help="pack folder (labels.npz and the photos folders carried)")
        p.add_argument("--out", help="where the report (and runs.tar) go (default $OUT)")
        p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
        p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="forward pass (default fp32, the paper's)")
        p.set_defaults(run=fn)
        if name == "probe":
            p.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2], help="process counts to try")
            p.add_argument("--seconds", type=float, default=15.0, help="timed seconds per process count")
            p.add_argument("--preset", default="paper", help="labels to step on")
            p.add_argument("--batch", type=int, default=TrainSettings().batch_size, help="images per step (default 128)")
            p.add_argument("--warmup", type=int, default=20, help="untimed steps first (default 20)")
        else:
            p.add_argument("--runs", type=parse_runs, required=True, help="preset:selection:fraction,...")
            p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0], help="seeds, e.g. 0,1,2")
            p.add_argument("--epochs", type=int, default=TrainSettings().epochs, help="epochs (default 50, the paper's)")
            p.add_argument("--workers", type=int, default=2, help="runs side by side (default 2)")
            p.add_argument("--probe", help="probe.json of an earlier probe: sets --workers and --estimate")
            p.add_argument("--budget", type=float, default=0.0, help="seconds: no run starts that would end later (0: none)")
            p.add_argument("--estimate", type=float, default=0.0, help="seconds one run is expected to take")
    p = commands.add_parser("score", help="score runs on a labelled folder (writes results.json, per_image.csv)")
    p.add_argument("runs", nargs="+", help="run folders holding model.pt")
    p.add_argument("--root", required=True, help="labelled images/ + masks/ folder")
    p.set_defaults(run=score)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
