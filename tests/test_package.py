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


def test_import_loads_no_torch_until_a_public_name_is_used() -> None:
    code = (
        "import sys, iem; before = 'torch' in sys.modules; "
        "from iem import segment_batch, metrics; "
        "print(before, 'torch' in sys.modules, segment_batch.__module__, metrics.__name__)"
    )
    assert _run(code) == "False True iem.api iem.metrics"


def test_public_names_resolve_to_their_modules() -> None:
    import iem
    import iem.api
    import iem.config
    import iem.core.engine
    import iem.distributed
    import iem.metrics
    import iem.pipeline

    assert iem.IEMConfig is iem.config.IEMConfig and iem.IEMResult is iem.core.engine.IEMResult
    assert iem.RunSummary is iem.pipeline.RunSummary and iem.segment_files is iem.distributed.segment_files
    assert (iem.segment, iem.segment_batch, iem.inpaint) == (iem.api.segment, iem.api.segment_batch, iem.api.inpaint)
    assert iem.metrics is sys.modules["iem.metrics"]
    assert set(iem.__all__) <= set(dir(iem))
    with pytest.raises(AttributeError, match="no attribute 'segmnet'"):
        iem.segmnet  # noqa: B018
