"""Load on ``iem serve`` over loopback: N concurrent clients for a fixed count of requests.

Starts ``iem serve`` as a child process on 127.0.0.1 (a free port), sends one warm-up request,
then ``--requests`` POST /api/segment requests from ``--clients`` threads, each posting the
next photo of the set as soon as its previous answer arrived. Reports latency p50 / p95,
throughput, errors (any answer but 200; there must be none while the clients do not exceed the
queue limit), the server's resident memory before and after the load, and the images per
batch. Then runs ``iem segment`` on the same photos (one process, its own timing from
``--json``) for the throughput side by side. Everything is bounded: a count of requests, a
time limit per request and for the whole run, loopback only.

    python benchmarks/serve_load.py                          # 8 clients, 48 requests, 16 horse photos
    python benchmarks/serve_load.py --dataset flowers17      # photos of one size: requests are batched
    python benchmarks/serve_load.py --clients 2 --requests 16 --json benchmarks/results/serve_load.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import IMAGE_EXTENSIONS, REPO, data_dir  # noqa: E402

HOST = "127.0.0.1"
#: Seconds the server gets to start (imports, first compile of the compiled loop).
START_LIMIT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def photos(count: int, dataset: str, explicit: Optional[str]) -> List[Path]:
    """The first ``count`` photos of a data set (or the shipped samples without the data)."""
    try:
        folder = data_dir(explicit) / dataset / "images"
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    except FileNotFoundError:
        from iem.data import sample_paths

        found = list(sample_paths())
    return found[:count]


def start_server(port: int, queue_limit: int, env: Dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "iem", "serve", "--host", HOST, "--port", str(port), "--device", "cpu",
               "--queue-limit", str(queue_limit)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + START_LIMIT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{HOST}:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
        if server.poll() is not None:
            raise RuntimeError(f"iem serve exited: {server.stderr.read().decode()[-2000:]}")
    server.kill()
    raise RuntimeError("iem serve did not answer in time")


def load(url: str, bodies: List[bytes], clients: int, requests: int, timeout: float) -> Dict[str, object]:
    latencies: List[float] = []
    statuses: Dict[str, int] = {}
    batches: List[int] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        with httpx.Client(timeout=timeout) as http:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                started = time.perf_counter()
                try:
                    response = http.post(url, content=bodies[index % len(bodies)])
                    status = str(response.status_code)
                except httpx.HTTPError as err:
                    status, response = type(err).__name__, None
                with lock:
                    latencies.append(time.perf_counter() - started)
                    statuses[status] = statuses.get(status, 0) + 1
                    if response is not None and response.status_code == 200:
                        batches.append(int(response.headers["X-IEM-Batch"]))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ok = statuses.get("200", 0)
    return {
        "requests": requests, "clients": clients, "seconds": round(wall, 2),
        "images_per_second": round(ok / wall, 3),
        "latency_p50_s": round(float(np.percentile(latencies, 50)), 3),
        "latency_p95_s": round(float(np.percentile(latencies, 95)), 3),
        "errors": requests - ok, "statuses": statuses,
        "mean_batch": round(float(np.mean(batches)), 2) if batches else 0.0,
    }


def segment_command(paths: List[Path], env: Dict[str, str]) -> Dict[str, float]:
    """``iem segment`` on the same photos, its own timing (the process start excluded)."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "in"
        folder.mkdir()
        for path in paths:
            shutil.copy(path, folder / path.name)
        out = Path(scratch) / "out"
        subprocess.run([sys.executable, "-m", "iem", "segment", str(folder), "-o", str(out), "--device", "cpu",
                        "--quiet", "--json"], env=env, check=True, stdout=subprocess.DEVNULL)
        summary = json.loads((out / "summary.json").read_text())
    return {"images": summary["counts"]["segmented"], "seconds": summary["timing"]["seconds"],
            "images_per_second": summary["timing"]["images_per_second"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--photos", type=int, default=16, help="distinct photos, posted in turn")
    parser.add_argument("--queue-limit", type=int, default=32, help="the server's --queue-limit")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request at most")
    parser.add_argument("--dataset", default="weizmann_horse",
                        help="photos of many sizes (weizmann_horse) or of one size (flowers17: batches form)")
    parser.add_argument("--data", help="folder holding the data sets (default: ../shared/data)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    paths = photos(args.photos, args.dataset, args.data)
    bodies = [p.read_bytes() for p in paths]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    port = free_port()
    server = start_server(port, args.queue_limit, env)
    url = f"http://{HOST}:{port}/api/segment"
    try:
        httpx.post(url, content=bodies[0], timeout=args.timeout).raise_for_status()  # warm-up, not timed
        before = rss_mib(server.pid)
        served = load(url, bodies, args.clients, args.requests, args.timeout)
        after = rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    command = segment_command(paths, env)
    result = {
        "dataset": args.dataset, "photos": [p.name for p in paths], "cpu_count": os.cpu_count(), "torch_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "serve": {**served, "server_rss_mib_before": round(before, 1), "server_rss_mib_after": round(after, 1)},
        "iem_segment": command,
        "serve_over_segment_throughput": round(served["images_per_second"] / command["images_per_second"], 3),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.clients <= args.queue_limit and served["errors"]:
        sys.exit(f"{served['errors']} errors below the queue limit")


if __name__ == "__main__":
    main()
