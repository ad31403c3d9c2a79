"""kernels.py's own logic on tiny inputs: which loop a process takes, the record of a cached
compilation, the background compilation, the band of the filter matrices and the arguments
handed to the compiled loop.

These tests are the ones ``.ci/mutation`` runs against kernels.py's mutants, so they stay
cheap: the compiled loop itself runs only where the test is about it (``compile_now``), on a
problem of a few pixels, from the disk cache that ``tests/core/test_kernels.py`` (or an
earlier run) filled. No test here starts a process: ``subprocess.Popen`` is replaced by a
recorder in every test.
"""

import importlib.metadata
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from iem.config import IEMConfig
from iem.core import kernels

needs_numba = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed")


@pytest.fixture(autouse=True)
def launched(monkeypatch):
    """Every test starts with no loop chosen, and records the processes it would start."""
    monkeypatch.setattr(kernels, "_READY", None)
    calls = []

    def popen(args, **kwargs):
        calls.append((args, kwargs))
        return "process"

    monkeypatch.setattr(kernels.subprocess, "Popen", popen)
    return calls


# -- which loop a process uses ------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [(None, "auto"), ("", "auto"), ("  ", "auto"), ("auto", "auto"), (" WAIT ", "wait"), ("Off", "off")],
)
def test_policy_reads_iem_numba(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("IEM_NUMBA", raising=False)
    else:
        monkeypatch.setenv("IEM_NUMBA", value)
    assert kernels.policy() == expected


def test_an_unknown_policy_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("IEM_NUMBA", "Sometimes")
    with pytest.raises(ValueError) as error:
        kernels.policy()
    assert str(error.value) == "IEM_NUMBA must be one of ('auto', 'wait', 'off'), got 'sometimes'"


def choose(monkeypatch, policy, cached, available=True):
    """Set up a process about to choose its loop; returns the record of ``compiled()`` calls."""
    monkeypatch.setattr(kernels, "AVAILABLE", available)
    monkeypatch.setenv("IEM_NUMBA", policy)
    asked = []

    def compiled():
        asked.append(True)
        return cached

    monkeypatch.setattr(kernels, "compiled", compiled)
    return asked


def test_wait_takes_the_compiled_loop_without_looking_at_the_cache(monkeypatch, launched):
    asked = choose(monkeypatch, "wait", cached=False)
    assert kernels.ready() is True
    assert asked == [] and launched == []


def test_auto_takes_a_cached_compilation(monkeypatch, launched):
    asked = choose(monkeypatch, "auto", cached=True)
    assert kernels.ready() is True
    assert asked == [True] and launched == []


def test_auto_without_a_cache_keeps_the_torch_loop_and_compiles_once_in_the_background(monkeypatch, launched):
    asked = choose(monkeypatch, "auto", cached=False)
    assert kernels.ready() is False
    assert asked == [True] and len(launched) == 1
    # Decided for the life of the process: neither asked again nor switched when the cache fills.
    monkeypatch.setattr(kernels, "compiled", lambda: True)
    monkeypatch.setenv("IEM_NUMBA", "wait")
    assert kernels.ready() is False and kernels.ready() is False
    assert len(launched) == 1


def test_a_choice_once_made_stays(monkeypatch, launched):
    choose(monkeypatch, "wait", cached=False)
    assert kernels.ready() is True
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    assert kernels.ready() is True


def test_without_numba_the_policy_is_not_even_read(monkeypatch, launched):
    asked = choose(monkeypatch, "sometimes", cached=True, available=False)
    assert kernels.ready() is False
    assert asked == [] and launched == []


@pytest.mark.parametrize("ready", [True, False])
def test_usable_needs_every_condition(monkeypatch, ready):
    monkeypatch.setattr(kernels, "AVAILABLE", True)
    monkeypatch.setattr(kernels, "ready", lambda: ready)
    x = torch.zeros(1, 3, 4, 4)
    assert kernels.usable(x, IEMConfig()) is ready
    assert kernels.usable(x, IEMConfig(numerator_norm="l2")) is False  # not the closed form
    assert kernels.usable(x.double(), IEMConfig()) is False
    assert kernels.usable(torch.zeros(1, 3, 4, 4, device="meta"), IEMConfig()) is False
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    assert kernels.usable(x, IEMConfig()) is False


def test_usable_does_not_choose_a_loop_for_work_it_cannot_do(monkeypatch, launched):
    # A float64 batch in an auto process with nothing compiled must not start a compilation.
    choose(monkeypatch, "auto", cached=False)
    assert kernels.usable(torch.zeros(1, 3, 4, 4, dtype=torch.float64), IEMConfig()) is False
    assert launched == [] and kernels._READY is None


# -- the record of a cached compilation --------------------------------------------------


@pytest.fixture
def fake_source(monkeypatch, tmp_path):
    """kernels.py seen at ``tmp_path/pkg``, beside a compiled_loop.py of known bytes and time."""
    package = tmp_path / "pkg"
    package.mkdir()
    source = package / "compiled_loop.py"
    source.write_text("x = 1\n")
    os.utime(source, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    monkeypatch.setattr(kernels, "__file__", str(package / "kernels.py"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return source


def test_marker_lives_in_the_users_cache_folder(monkeypatch, tmp_path, fake_source):
    marker = kernels._marker()
    assert marker.parent == tmp_path / "cache" / "iem"
    assert marker.name.startswith("compiled-loop-") and marker.suffix == ".json"
    digits = marker.name[len("compiled-loop-") : -len(".json")]
    assert len(digits) == 16 and set(digits) <= set("0123456789abcdef")
    assert kernels._marker() == marker  # the same loop, the same record
    for unset in ("", None):
        if unset is None:
            monkeypatch.delenv("XDG_CACHE_HOME")
        else:
            monkeypatch.setenv("XDG_CACHE_HOME", unset)
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        assert kernels._marker() == tmp_path / "home" / ".cache" / "iem" / marker.name


def test_marker_changes_with_what_numbas_cache_depends_on(monkeypatch, tmp_path, fake_source):
    before = kernels._marker().name
    time_ns = fake_source.stat().st_mtime_ns
    os.utime(fake_source, ns=(time_ns, time_ns + 1))  # the loop edited (one nanosecond later)
    assert kernels._marker().name != before
    os.utime(fake_source, ns=(time_ns, time_ns))
    assert kernels._marker().name == before
    fake_source.write_text("x = 2\n")  # the same size
    os.utime(fake_source, ns=(time_ns, time_ns))
    assert kernels._marker().name == before
    fake_source.write_text("x = 22\n")  # another size, the same time
    os.utime(fake_source, ns=(time_ns, time_ns))
    assert kernels._marker().name != before
    fake_source.write_text("x = 1\n")
    os.utime(fake_source, ns=(time_ns, time_ns))
    assert kernels._marker().name == before
    with monkeypatch.context() as patch:  # another Python
        patch.setattr(sys, "version", sys.version + " other")
        assert kernels._marker().name != before
    real_version = importlib.metadata.version
    with monkeypatch.context() as patch:  # another numba, or one without metadata
        patch.setattr(importlib.metadata, "version", lambda name: "0.0" if name == "numba" else real_version(name))
        other_numba = kernels._marker().name
        assert other_numba != before

        def missing(name):
            raise importlib.metadata.PackageNotFoundError(name)

        patch.setattr(importlib.metadata, "version", missing)
        assert kernels._marker().name not in (before, other_numba)


def test_marker_names_the_loop_by_its_real_path(monkeypatch, tmp_path, fake_source):
    before = kernels._marker().name
    (tmp_path / "link").symlink_to(fake_source.parent)  # the same file by another path
    monkeypatch.setattr(kernels, "__file__", str(tmp_path / "link" / "kernels.py"))
    assert kernels._marker().name == before
    copy = tmp_path / "copy"  # an identical file elsewhere (another installation)
    copy.mkdir()
    (copy / "compiled_loop.py").write_bytes(fake_source.read_bytes())
    time_ns = fake_source.stat().st_mtime_ns
    os.utime(copy / "compiled_loop.py", ns=(time_ns, time_ns))
    monkeypatch.setattr(kernels, "__file__", str(copy / "kernels.py"))
    assert kernels._marker().name != before


@pytest.fixture
def record(monkeypatch, tmp_path):
    path = tmp_path / "record.json"
    monkeypatch.setattr(kernels, "_marker", lambda: path)
    return path


def test_compiled_trusts_a_record_whose_cache_holds_the_loop(tmp_path, record):
    cache = tmp_path / "numba"
    cache.mkdir()
    record.write_text(json.dumps({"numba_cache": str(cache)}))
    assert kernels.compiled() is False  # an empty cache folder
    (cache / "compiled_loop._optimize-348.py311.nbc").write_bytes(b"")
    (cache / "compiled_loop._pixelwise-15.py311.nbi").write_bytes(b"")
    assert kernels.compiled() is False  # no index of the loop itself
    (cache / "compiled_loop._optimize-348.py311.nbi").write_bytes(b"")
    assert kernels.compiled() is True


@pytest.mark.parametrize("text", [None, "", "not json", "{}", "[]", '{"numba_cache": null}', '{"cache": "/"}', "dir"])
def test_compiled_is_false_for_a_missing_or_broken_record(text, record):
    if text == "dir":
        record.mkdir()
    elif text is not None:
        record.write_text(text)
    assert kernels.compiled() is False


# -- the compilation itself -------------------------------------------------------------


def test_background_compilation_is_a_detached_waiting_process(monkeypatch, launched):
    monkeypatch.setenv("IEM_NUMBA", "auto")
    monkeypatch.setenv("IEM_TEST_SENTINEL", "kept")
    assert kernels.compile_in_background() == "process"
    (args, kwargs), = launched
    assert args == [sys.executable, "-m", "iem.core.kernels", "--background"]
    assert kwargs["env"]["IEM_NUMBA"] == "wait" and kwargs["env"]["IEM_TEST_SENTINEL"] == "kept"
    assert os.environ["IEM_NUMBA"] == "auto"  # this process's setting untouched
    assert kwargs["start_new_session"] is True
    for stream in ("stdin", "stdout", "stderr"):
        assert kwargs[stream] == kernels.subprocess.DEVNULL
    assert set(kwargs) == {"env", "start_new_session", "stdin", "stdout", "stderr"}


def test_background_compilation_that_cannot_start_is_skipped(monkeypatch):
    def popen(args, **kwargs):
        raise OSError("no such file")

    monkeypatch.setattr(kernels.subprocess, "Popen", popen)
    assert kernels.compile_in_background() is None


@needs_numba
def test_compile_now_caches_the_signature_of_real_runs_and_records_it(monkeypatch, tmp_path, one_torch_thread):
    from iem.core import compiled_loop
    from iem.core.engine import optimize_masks
    from iem.core.filters import LinearFilter

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "new" / "cache"))  # folders made as needed
    monkeypatch.setenv("IEM_NUMBA", "wait")
    assert not kernels.compiled()
    marker = kernels.compile_now()
    assert marker == kernels._marker() and marker.parent == tmp_path / "new" / "cache" / "iem"
    assert kernels.compile_now() == marker  # compiling again rewrites the record
    cache = Path(json.loads(marker.read_text())["numba_cache"])
    assert sorted(cache.glob("compiled_loop._optimize-*.nbi")) and kernels.compiled()
    # A run as the engine makes it needs no other compilation than the one cached.
    images = torch.rand(2, 3, 12, 10, generator=torch.Generator().manual_seed(0))
    masks = torch.zeros(2, 1, 12, 10, dtype=torch.bool)
    masks[:, :, 3:9, 2:8] = True
    cfg = IEMConfig.paper(iterations=3)
    optimize_masks(images, masks, cfg, LinearFilter.build(12, 10, cfg, torch.float32, "cpu"))
    assert len(compiled_loop._optimize.signatures) == 1


# -- main: ``python -m iem.core.kernels`` ------------------------------------------------


@pytest.fixture
def entry(monkeypatch, tmp_path):
    """main's collaborators replaced by recorders; returns what they saw."""
    seen = {"nice": [], "compiled": [], "lock": []}
    monkeypatch.setattr(kernels, "compile_now", lambda: seen["compiled"].append(True) or tmp_path / "m.json")
    monkeypatch.setattr(kernels.os, "nice", lambda n: seen["nice"].append(n))
    monkeypatch.setattr(kernels, "_exclusive_lock", lambda: seen["lock"].append(True) or 7)
    monkeypatch.setattr(kernels, "compiled", lambda: False)
    monkeypatch.setattr(kernels.importlib.util, "find_spec", lambda name: object() if name == "numba" else None)
    return seen


def test_main_compiles_in_the_foreground(capsys, entry, tmp_path):
    assert kernels.main([]) == 0
    assert entry == {"nice": [], "compiled": [True], "lock": []}
    assert capsys.readouterr().out == f"compiled and cached the CPU loop ({tmp_path / 'm.json'})\n"


def test_main_in_the_background_is_niced_and_silent(monkeypatch, capsys, entry):
    monkeypatch.setattr(sys, "argv", ["kernels", "--background"])
    assert kernels.main() == 0
    assert entry == {"nice": [10], "compiled": [True], "lock": [True]}
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("other", ["compiling", "compiled"])
def test_main_in_the_background_leaves_it_to_another_process(monkeypatch, entry, other):
    if other == "compiling":
        monkeypatch.setattr(kernels, "_exclusive_lock", lambda: False)
    else:
        monkeypatch.setattr(kernels, "compiled", lambda: True)
    assert kernels.main(["--background"]) == 0
    assert entry["compiled"] == []


def test_main_without_numba_says_so(monkeypatch, capsys, entry):
    monkeypatch.setattr(kernels.importlib.util, "find_spec", lambda name: None)
    assert kernels.main(["--background"]) == 1
    assert entry == {"nice": [], "compiled": [], "lock": []}
    out, err = capsys.readouterr()
    assert out == "" and err == "numba is not installed (pip install 'iem[fast]'): the torch loop is used\n"


def test_one_compilation_at_a_time(monkeypatch, tmp_path):
    monkeypatch.setattr(kernels, "_marker", lambda: tmp_path / "new" / "folder" / "record.json")
    before = os.umask(0o022)
    try:
        first = kernels._exclusive_lock()
        assert isinstance(first, int) and first is not False
        lock = tmp_path / "new" / "folder" / "record.lock"
        assert lock.read_bytes() == b"" and lock.stat().st_mode & 0o777 == 0o644
        assert kernels._exclusive_lock() is False  # held by the first descriptor
        os.close(first)
        again = kernels._exclusive_lock()
        assert isinstance(again, int) and again is not False
        os.close(again)
    finally:
        os.umask(before)


# -- the band of the filter matrices and the compiled loop's arguments ---------------------


def band_by_hand(matrix):
    """``D[i, d] = A[i, i + d - w]`` by loops over a dense copy, ``w`` the widest offset."""
    a = matrix.double().tolist()
    n = len(a)
    w = max((abs(i - j) for i in range(n) for j in range(n) if a[i][j] != 0), default=0)
    return [[a[i][i + d - w] if 0 <= i + d - w < n else 0.0 for d in range(2 * w + 1)] for i in range(n)], w


@pytest.mark.parametrize("n, w", [(7, 2), (5, 0), (4, 3), (6, 6)])
def test_diagonals_of_an_unsymmetric_band(n, w):
    g = torch.Generator().manual_seed(n + w)
    matrix = torch.rand(n, n, generator=g) + 0.5
    offsets = torch.arange(n).view(-1, 1) - torch.arange(n).view(1, -1)
    matrix[offsets.abs() > w] = 0
    matrix.requires_grad_(True)  # a filter's matrix may be part of a graph
    band, radius = kernels.diagonals(matrix)
    want, want_w = band_by_hand(matrix.detach())
    assert radius == want_w == min(w, n - 1)
    assert band.dtype == np.float64 and band.tolist() == want


def test_diagonals_of_a_half_precision_matrix():
    # numpy has no bfloat16: the band is read in float64, where every bfloat16 value is exact.
    matrix = torch.tensor([[1.0, 0.5, 0.0], [0.25, 1.0, 0.5], [0.0, 0.25, 1.0]], dtype=torch.bfloat16)
    band, radius = kernels.diagonals(matrix)
    assert radius == 1 and band.tolist() == [[0.0, 1.0, 0.5], [0.25, 1.0, 0.5], [0.25, 1.0, 0.0]]


def test_diagonals_of_a_zero_matrix():
    band, radius = kernels.diagonals(torch.zeros(3, 3))
    assert radius == 0 and band.tolist() == [[0.0], [0.0], [0.0]]


def loop_arguments(monkeypatch, fixed, cfg):
    """Call ``optimize`` on a non-square two-image, two-channel batch with unsymmetric filter
    matrices of different bands, the compiled loop replaced by a recorder that writes a
    known result; returns (inputs, recorded arguments, result)."""
    from iem.core import compiled_loop

    n, c, h, w = 2, 2, 5, 7
    g = torch.Generator().manual_seed(4)
    images = torch.rand(n, c, h, w, generator=g)
    masks = torch.rand(n, 1, h, w, generator=g) > 0.5
    numerator = torch.rand(n, c, h, w, generator=g)
    denominator = torch.rand(1, 1, h, w, generator=g)
    rows = torch.rand(h, h, generator=g) * ((torch.arange(h).view(-1, 1) - torch.arange(h)).abs() <= 1)
    cols = torch.rand(w, w, generator=g) * ((torch.arange(w).view(-1, 1) - torch.arange(w)).abs() <= 2)
    recorded = {}

    def loop(*args):
        recorded["args"] = args
        final, its = args[-2], args[-1]
        final[...] = np.arange(final.size).reshape(final.shape) % 3 == 0
        its[...] = [11, 4]

    monkeypatch.setattr(compiled_loop, "_optimize", loop)
    result = kernels.optimize(images, masks, numerator, denominator, rows, cols, cfg, 6, 0.75, fixed)
    inputs = dict(images=images, masks=masks, numerator=numerator, denominator=denominator, rows=rows, cols=cols)
    return inputs, recorded["args"], result


@needs_numba
@pytest.mark.parametrize("pinned", [False, True])
def test_optimize_hands_the_loop_its_arguments_in_order(monkeypatch, pinned):
    n, h, w = 2, 5, 7
    fixed = (torch.arange(n * 2 * h * w).view(n, 2, h, w) % 5 == 0).to(torch.uint8) if pinned else None
    # Every flag the other way round in the second case.
    flags = (False, True, True, False, False) if not pinned else (True, False, False, True, True)
    cfg = IEMConfig.paper(iterations=17, lambda_=0.125, epsilon=0.25, boundary_only=flags[0], smoothing=flags[1],
                          smoothing_rule="paper" if flags[2] else "code", early_exit=flags[3])
    inputs, args, (final, its) = loop_arguments(monkeypatch, fixed, cfg)
    assert len(args) == 24
    (x, whole_num, whole_den, image_sums, masks, rows_r, cols_r, wr, rows_c_t, cols_c, wc,
     eps, lam, floor, iterations, boundary_only, smoothing, min_count, exclude_self, early_exit,
     pins, has_pins, out_final, out_its) = args
    images = inputs["images"]
    assert np.array_equal(x, images.numpy()) and np.array_equal(whole_num, inputs["numerator"].numpy())
    assert np.array_equal(whole_den, inputs["denominator"].numpy()[0, 0])
    sums = [[sum(float(v) for v in images[i, ch].flatten().tolist()) for ch in range(2)] for i in range(n)]
    assert image_sums.dtype == np.float64 and np.allclose(image_sums, sums, rtol=1e-12)
    assert np.array_equal(masks, inputs["masks"].numpy()[:, 0])
    for got, matrix, radius in ((rows_r, inputs["rows"], 1), (cols_r, inputs["rows"].T, 1),
                                (rows_c_t.T, inputs["cols"], 2), (cols_c, inputs["cols"].T, 2)):
        want, want_w = band_by_hand(matrix)
        assert want_w == radius and got.tolist() == want
    assert (wr, wc) == (1, 2) and type(wr) is int and type(wc) is int
    assert (eps, lam, floor) == (0.25, 0.125, 0.75) and all(type(v) is float for v in (eps, lam, floor))
    assert (iterations, min_count) == (17, 6) and type(iterations) is int and type(min_count) is int
    passed = (boundary_only, smoothing, exclude_self, early_exit, has_pins)
    assert passed == flags and all(type(v) is bool for v in passed)
    if pinned:
        assert pins.dtype == np.bool_ and np.array_equal(pins, fixed.numpy() != 0)
    else:
        assert pins.dtype == np.bool_ and pins.shape == (0, 2, 1, 1)
    assert out_final.shape == (n, h, w) and out_final.dtype == np.bool_
    assert out_its.shape == (n,) and out_its.dtype == np.int64
    # One compiled signature serves every call: C-ordered arrays of fixed types.
    arrays = (x, whole_num, whole_den, image_sums, masks, rows_r, cols_r, rows_c_t, cols_c, pins)
    assert all(a.flags.c_contiguous for a in arrays)
    assert [a.ndim for a in arrays] == [4, 4, 2, 2, 3, 2, 2, 2, 2, 4]
    # The loop's result comes back as (N, 1, H, W) masks and (N,) counts.
    assert final.shape == (n, 1, h, w) and final.dtype == torch.bool
    assert final.flatten().tolist() == [k % 3 == 0 for k in range(n * h * w)]
    assert its.tolist() == [11, 4]


@needs_numba
def test_optimize_passes_views_as_c_ordered_arrays(monkeypatch):
    from iem.core import compiled_loop

    n, c, h, w = 1, 3, 6, 4
    images = torch.rand(n, w, h, c).permute(0, 3, 2, 1)  # a transposed view, not C-ordered
    masks = (torch.rand(n, 1, w, h) > 0.5).transpose(2, 3)
    numerator = torch.rand(n, c, w, h).transpose(2, 3)
    denominator = torch.rand(1, 1, w, h).transpose(2, 3)
    fixed = (torch.rand(n, 2, w, h) > 0.8).transpose(2, 3)
    seen = {}

    def loop(*args):
        seen["args"] = args

    monkeypatch.setattr(compiled_loop, "_optimize", loop)
    kernels.optimize(images, masks, numerator, denominator, torch.eye(h), torch.eye(w), IEMConfig(), 5, 1.0, fixed)
    args = seen["args"]
    for got, want in ((args[0], images), (args[1], numerator), (args[2], denominator[0, 0]), (args[4], masks[:, 0]),
                      (args[20], fixed)):
        assert got.flags.c_contiguous and np.array_equal(got, want.numpy())
