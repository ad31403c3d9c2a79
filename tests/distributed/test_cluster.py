"""``iem segment`` on a LocalCluster of two worker processes: the same masks as one machine,
object storage, a worker killed mid-run, a client killed and rerun, and the one-line errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List

import pytest
from click.testing import CliRunner

from iem import distributed
from iem.cli import main
from iem.distributed import segment_files
from iem.pipeline import FAILURES_LOG, SUMMARY_JSON
from tests.distributed.conftest import BROKEN, PHOTOS, SETTINGS, read_tree

REPO = Path(__file__).resolve().parents[2]
CLI_SETTINGS = ["--preset", "paper", "--size", "32", "--iterations", "3", "--batch-size", "8"]


def _no_temporaries(root: Path) -> List[str]:
    return [p.name for p in root.rglob("*") if p.name.endswith(".iem-tmp")]


def test_cluster_gives_the_single_machine_masks(photos: Path, reference: Dict[str, bytes], client, tmp_path: Path) -> None:
    out = tmp_path / "out"
    failures: List[str] = []
    summary = segment_files(
        photos, out, progress=False, client=client, task_size=16, on_failure=lambda f: failures.append(f.line()), **SETTINGS
    )
    assert read_tree(out) == reference
    assert (summary.segmented, summary.skipped, summary.failed) == (PHOTOS, 0, 1)
    assert failures == [f"{photos / BROKEN}: not a recognised image format"]
    [logged] = (out / FAILURES_LOG).read_text().splitlines()
    assert logged.split("\t", 1)[1] == failures[0]
    assert summary.settings["task_size"] == 16 and summary.settings["cluster"] == client.scheduler.address
    assert summary.exit_code == 1
    assert _no_temporaries(out) == []


def test_object_storage_in_and_out_then_resume(s3: str, reference: Dict[str, bytes], client) -> None:
    import s3fs

    # One folder of the bucket (a third of its photos) keeps the number of requests to the
    # in-process S3 server, and the test's time, small.
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    source, out = f"{s3}/photos/sub", f"{s3}/masks"
    expected = {name[len("sub/") :]: data for name, data in reference.items() if name.startswith("sub/")}
    summary = segment_files(source, out, progress=False, client=client, write_summary=True, **SETTINGS)
    assert (summary.segmented, summary.skipped, summary.failed) == (len(expected), 0, 1)
    broken = f"{s3}/photos/{BROKEN}: not a recognised image format"
    assert [failure.line() for failure in summary.failures] == [broken]
    keys = sorted(fs.find(out[len("s3://") :]))
    masks = {key.split("/masks/", 1)[1]: fs.cat_file(key) for key in keys if key.endswith(".mask.png")}
    assert masks == expected
    assert not [key for key in keys if key.endswith(".iem-tmp")]
    assert fs.cat_file(f"{out}/{SUMMARY_JSON}").startswith(b"{")
    assert summary.line().endswith(f"failures listed in {out}/{FAILURES_LOG}")

    again = segment_files(source, out, progress=False, client=client, **SETTINGS)
    assert (again.segmented, again.skipped, again.failed) == (0, len(expected), 1)
    log = fs.cat_file(f"{out}/{FAILURES_LOG}").decode().splitlines()
    assert [line.split("\t", 1)[1] for line in log] == [broken] * 2


def test_object_storage_without_a_cluster(s3: str, reference: Dict[str, bytes], tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = segment_files(f"{s3}/photos/sub/deep/*.png", out, progress=False, **SETTINGS)
    expected = {name[len("sub/deep/") :]: data for name, data in reference.items() if name.startswith("sub/deep/")}
    assert summary.segmented == len(expected) > 0 and summary.failed == 0
    assert read_tree(out) == expected


def test_worker_killed_mid_run(photos: Path, reference: Dict[str, bytes], client, tmp_path: Path) -> None:
    out = tmp_path / "out"
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    seen_at_kill: List[int] = []

    def kill_when_work_has_started() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = len(list(out.rglob("*.mask.png"))) if out.is_dir() else 0
            if done:
                os.kill(victim, signal.SIGKILL)
                seen_at_kill.append(done)
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_when_work_has_started)
    killer.start()
    try:
        summary = segment_files(photos, out, progress=False, client=client, task_size=4, **SETTINGS)
    finally:
        killer.join()
    assert seen_at_kill and seen_at_kill[0] < PHOTOS, "the worker was not killed mid-run"
    assert summary.failed == 1 and summary.segmented + summary.skipped == PHOTOS
    assert read_tree(out) == reference
    client.wait_for_workers(2, timeout=120)  # the nanny restarts it; later tests get two workers again

    # The dead worker may have left hidden temporaries (never taken for outputs); a later run
    # that writes into their folder removes them, as on one machine.
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".iem-tmp")]
    past = time.time() - 2 * distributed.CLOCK_MARGIN_S  # left long enough ago to be taken for stale
    for leftover in leftovers:
        os.utime(leftover, (past, past))
    for folder in {p.parent for p in leftovers}:
        next(folder.glob("*.mask.png")).unlink()
    later = segment_files(photos, out, progress=False, client=client, task_size=4, **SETTINGS)
    assert later.segmented == len({p.parent for p in leftovers})
    assert _no_temporaries(out) == [] and read_tree(out) == reference


def test_client_killed_then_rerun_skips_finished_images(
    photos: Path, reference: Dict[str, bytes], client, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = [str(photos), "-o", str(out), "--cluster", client.scheduler.address, "--task-size", "4", *CLI_SETTINGS]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "iem", "segment", *args, "-q"], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if out.is_dir() and any(out.rglob("*.mask.png")):
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode() if proc.stderr else ""
    finished = read_tree(out)
    assert 0 < len(finished) < PHOTOS
    assert all(reference[name] == data for name, data in finished.items())  # whole files only

    result = CliRunner().invoke(main, ["segment", *args])
    assert result.exit_code == 1, result.output
    line = result.stderr.strip().splitlines()[-1]
    skipped = int(line.split(" segmented")[1].split(", ")[1].split(" already")[0])
    assert skipped >= len(finished)
    assert read_tree(out) == reference


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_scheduler_is_one_line_and_exit_2(photos: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT_S", 1)
    address = f"tcp://127.0.0.1:{_closed_port()}"
    result = CliRunner().invoke(main, ["segment", str(photos), "-o", str(tmp_path / "out"), "--cluster", address])
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"{address}: cannot reach the Dask scheduler")


def test_unusable_output_store_is_one_line_and_exit_2(s3: str, client) -> None:
    args = ["segment", f"{s3}/photos", "-o", "s3://no-such-bucket/masks", "--cluster", client.scheduler.address]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("s3://no-such-bucket/masks: cannot write to the output location")


@pytest.mark.parametrize("address", ["local:0", "local:two"])
def test_bad_local_cluster_address(address: str, photos: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["segment", str(photos), "-o", str(tmp_path), "--cluster", address])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{address}: expected local:N with N >= 1 worker processes"


def test_task_size_needs_a_cluster(photos: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["segment", str(photos), "-o", str(tmp_path), "--task-size", "4"])
    assert result.exit_code == 2 and "--task-size needs --cluster" in result.stderr


def test_without_a_cluster_dask_and_fsspec_stay_unimported(photos: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from iem.cli import main\n"
        "try:\n"
        f"    main(['segment', {str(photos / 'sub' / 'deep')!r}, '-o', {str(tmp_path)!r}, '-q', {', '.join(map(repr, CLI_SETTINGS))}])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'fsspec', 's3fs')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert any(tmp_path.rglob("*.mask.png"))


@pytest.mark.parametrize(
    "images, threads, expected",
    [(0, 2, 1), (1, 2, 1), (8, 2, 1), (9, 2, 2), (240, 2, 30), (240, 16, 4), (10**6, 8, 256)],
)
def test_auto_task_size(images: int, threads: int, expected: int) -> None:
    # ceil(images / (4 tasks per thread * threads)), kept within [1, 256]
    assert distributed.auto_task_size(images, threads) == expected


def test_train_computes_its_pseudo_labels_on_the_cluster(photos: Path, client, tmp_path: Path) -> None:
    import numpy as np

    # No epoch: what is compared is phase 1, the masks cached beside the checkpoint.
    inputs = [str(p) for p in sorted((photos / "sub" / "deep").glob("*.png"))[:4]]
    args = ["--iterations", "3", "--epochs", "0", "--device", "cpu", "--quiet", "--top-k", "2"]
    caches = []
    for name, extra in [("here", []), ("cluster", ["--cluster", client.scheduler.address])]:
        out = tmp_path / name / "model.pt"
        result = CliRunner().invoke(main, ["train", *inputs, "--out", str(out), *args, *extra])
        assert result.exit_code == 0, result.output
        with np.load(out.with_name("model.iem.npz")) as cache:
            caches.append({key: cache[key] for key in ("masks", "scores", "done")})
    here, there = caches
    assert int(there["done"]) == len(inputs)
    for key in here:
        np.testing.assert_array_equal(here[key], there[key])


def test_train_with_an_unreachable_cluster_is_exit_2(photos: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT_S", 1)
    address = f"tcp://127.0.0.1:{_closed_port()}"
    inputs = [str(p) for p in sorted((photos / "sub" / "deep").glob("*.png"))[:2]]
    result = CliRunner().invoke(main, ["train", *inputs, "--out", str(tmp_path / "m.pt"), "--cluster", address, "-q"])
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"{address}: cannot reach the Dask scheduler")
