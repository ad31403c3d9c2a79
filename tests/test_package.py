"""Importing iem: what it sets up for the process before torch loads."""

import os
import subprocess
import sys

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
SHOW = "import os; print(os.environ.get('OMP_WAIT_POLICY'))"


def _run(code: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    environment.update(env, PYTHONPATH=SRC + os.pathsep + environment.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    "code, env, expected",
    [
        ("import iem; " + SHOW, {}, "PASSIVE"),  # idle OpenMP workers sleep: the default iem sets
        ("import iem; " + SHOW, {"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE"),  # the user's choice wins
        ("import torch; import iem; " + SHOW, {}, "None"),  # too late to matter: left alone
    ],
)
def test_openmp_wait_policy(code: str, env: dict, expected: str) -> None:
    assert _run(code, **env) == expected
