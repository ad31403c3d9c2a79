"""Fixtures of the benchmark smoke tests: one thread, and a runner for the scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test of this folder on one torch thread."""


ScriptRunner = Callable[..., Tuple[subprocess.CompletedProcess, Dict[str, Any]]]


@pytest.fixture
def run_script(tmp_path: Path) -> ScriptRunner:
    """Run ``python -m benchmarks.<name> ARGS --out <tmp>/<name>.json`` from the repository root.

    Returns the finished process and the JSON it wrote ({} when it wrote none).
    """

    def run(name: str, *args: str, out: bool = True) -> Tuple[subprocess.CompletedProcess, Dict[str, Any]]:
        target = tmp_path / f"{name}.json"
        command = [sys.executable, "-m", f"benchmarks.{name}", *args] + (["--out", str(target)] if out else [])
        env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
        done = subprocess.run(command, cwd=REPO, check=False, capture_output=True, text=True, env=env, timeout=300)
        data = json.loads(target.read_text()) if out and target.exists() else {}
        return done, data

    return run
