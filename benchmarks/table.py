"""Markdown tables of the benchmark results, for docs/speed.md.

Reads the JSON files the other scripts wrote (``benchmarks/results/*.json`` by default) and
prints one table per benchmark found, each row with the command that reproduces it.

Example::

    python -m benchmarks.table
    python -m benchmarks.table --results /tmp/results
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from benchmarks import common
from benchmarks.speed import ENGINES, LABELS

MIB = 1024**2


def _load(folder: Path, name: str) -> Optional[Dict[str, Any]]:
    path = folder / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _busy(timing: Dict[str, Any]) -> str:
    others = timing.get("others_busy")
    return "-" if others is None else f"{100 * others:.0f}%"


def _env_prefix(env: Dict[str, Any]) -> str:
    values = env.get("env", {})
    return "".join(f"{k}={v} " for k, v in values.items() if v and k == "OMP_WAIT_POLICY")


def speed_table(data: Dict[str, Any]) -> List[str]:
    env = data["environment"]
    command = f"`{_env_prefix(env)}python -m benchmarks.speed --images {data['images']} --iterations {data['iterations']}`"
    caption = (
        f"Naive autograd vs iem, {data['images']} Weizmann Horse images x {data['iterations']} iterations at 128 px, "
        f"released preset, CPU ({env['cpu']}), torch {env['torch']}, commit {str(env.get('commit'))[:10]}"
        f"{' (uncommitted changes)' if env.get('dirty') else ''}. Reproduce: {command}."
    )
    lines = [
        caption,
        "",
        _row("engine", "device", "threads", "clock", "images/s", "ms per image-iteration", "ratio", "other load"),
        _row(*["---"] * 8),
    ]
    for setting in data["settings"]:
        for engine in ENGINES:
            entry = setting["engines"][engine]
            lines.append(_row(
                LABELS[engine], "cpu", setting["threads"],
                "wall" if setting["clock"] == "wall" else "process CPU",
                f"{entry['images_per_s']:.2f}", f"{entry['ms_per_image_iteration']:.3f}",
                f"{entry['ratio']:.1f}x", _busy(entry["best"]),
            ))
    agreement = data["agreement_naive_vs_iem"]
    lines += ["", (f"Masks, naive vs iem: {common.format_agreement(agreement)}; iem with and without early exit "
                   f"identical: {data['early_exit_identical']}.")]
    return lines


def paper_table(data: Dict[str, Any]) -> List[str]:
    env = data["environment"]
    command = f"`{_env_prefix(env)}python -m benchmarks.paper_protocol --threads {data['threads']}`"
    distinct = " + ".join(f"{count} {name}" for name, count in data["distinct_images"].items())
    caption = (
        f"Paper protocol: {data['images']} images (cycling {distinct}) x 3 squares "
        f"x {data['iterations']} iterations at 128 px, {data['device']}, {data['threads']} threads. Reproduce: {command}."
    )
    lines = [
        caption,
        "",
        _row("run", "wall s", "images/s", "ms per image-iteration", "process CPU s", "CPU s per thread", "other load"),
        _row(*["---"] * 7),
    ]
    for name, run in data["runs"].items():
        t = run["timing"]
        lines.append(_row(name.replace("_", " "), f"{t['wall_s']:.1f}", f"{run['images_per_s']:.1f}",
                          f"{run['ms_per_image_iteration']:.3f}", f"{t['cpu_s']:.1f}", f"{run['cpu_s_per_thread']:.1f}",
                          _busy(t)))
    dist, comparison = data["iterations_distribution"], data.get("early_exit_comparison") or {}
    q = dist["quantiles"]
    lines += ["", (f"Iterations of the kept result: mean {dist['mean']:.1f}, p10 {q['0.1']:.0f}, median {q['0.5']:.0f}, "
                   f"p90 {q['0.9']:.0f}, max {dist['max']}; {dist['ran_all_iterations']}/{data['images']} ran all "
                   f"{data['iterations']}.")]
    if comparison:
        cpu = comparison.get("speedup_cpu")
        lines.append(f"Early exit: masks identical {comparison['masks_identical']}, chosen squares identical "
                     f"{comparison['init_identical']}; {comparison['speedup']:.2f}x faster by wall clock"
                     + (f", {cpu:.2f}x less CPU time." if cpu else "."))
    return lines


def memory_table(data: Dict[str, Any]) -> List[str]:
    env = data["environment"]
    counts = " ".join(str(c) for c in data["counts"])
    caption = (
        f"Peak RSS per fresh process, paper preset, {data['iterations']} iterations, {data['size']} px random images, "
        f"{env['torch_threads']} thread(s). Reproduce: `python -m benchmarks.memory --counts {counts}`."
    )
    lines = [
        caption,
        "",
        _row("path", "N", "peak RSS MiB", "input MiB", "output MiB", "growth beyond input+output MiB", "wall s"),
        _row(*["---"] * 7),
    ]
    for r in sorted(data["records"], key=lambda r: (r["mode"], r["images"])):
        lines.append(_row(r["mode"], r["images"], f"{r['peak_rss'] / MIB:.0f}", f"{r['input_bytes'] / MIB:.0f}",
                          f"{r['output_bytes'] / MIB:.0f}", f"{r['growth_beyond_io'] / MIB:.0f}",
                          f"{r['timing']['wall_s']:.1f}"))
    lines.append("")
    for mode, v in data["verdicts"].items():
        lines.append(f"{mode}: {v['measure']} varies by {v['spread_bytes'] / MIB:.0f} MiB across N; flat: {v['flat']}, "
                     f"under 2 GiB: {v['under_limit']}.")
    return lines


def gpu_rows(data: Dict[str, Any]) -> List[List[str]]:
    """The CUDA runs of a GPU check: run, images x runs, s, images/s, ms per image-iteration, ratio."""
    timings, iterations = data.get("timings", {}), data.get("iterations", 150)
    rows = []
    naive = timings.get("naive_vs_iem_released")
    if naive:
        images = naive["agreement"]["images"]
        for engine, seconds, ratio in (("naive", naive["naive_seconds"], 1.0), ("iem", naive["iem_seconds"], naive["ratio"])):
            label = f"{LABELS[engine]}, {images} horses, released"
            rows.append([label, f"{images} x 1", f"{seconds:.3f}", f"{images / seconds:.1f}",
                         f"{1000 * seconds / (images * iterations):.4f}", f"{ratio:.1f}x"])
    for key, suffix in (("paper_early_exit", ""), ("paper_no_early_exit", ", no early exit")):
        run = timings.get(key)
        if run:
            images = round(run["seconds"] * run["images_per_s"])
            rows.append([f"iem, paper protocol, {images} images x 3 squares{suffix}", f"{images} x 3", f"{run['seconds']:.2f}", f"{run['images_per_s']:.0f}",
                         f"{1000 * run['seconds'] / (images * iterations):.4f}", "-"])
    return rows


def gpu_table(data: Dict[str, Any]) -> List[str]:
    if not data.get("cuda"):
        return ["GPU check: CUDA was not available."]
    env = data["environment"]
    commit = str(env.get("commit"))[:10] + (" (uncommitted changes)" if env.get("dirty") else "")
    lines = [
        f"CUDA on {env.get('cuda')}, torch {env['torch']}, commit {commit}. Reproduce: `bash benchmarks/gpu_check.sh`.",
        "",
        _row("run", "images x runs", "s", "images/s", "ms per image-iteration", "ratio"),
        _row(*["---"] * 6),
    ]
    lines += [_row(*row) for row in gpu_rows(data)]
    lines.append("")
    for preset, agreement in data.get("agreement", {}).items():
        lines.append(f"{preset} preset, CUDA vs CPU masks: {common.format_agreement(agreement)}, chosen squares "
                     f"{agreement['init_identical']}/{agreement['images']} identical.")
    naive = data.get("timings", {}).get("naive_vs_iem_released")
    if naive:
        lines.append(f"Naive vs iem on CUDA: {common.format_agreement(naive['agreement'])}.")
    return lines


def summary_table(folder: Path) -> List[str]:
    """One row per engine, device and clock across the result files, with the command of each."""
    lines = [
        _row("engine", "device", "threads", "clock", "images/s", "ms per image-iteration", "ratio", "command"),
        _row(*["---"] * 8),
    ]
    speed, paper, gpu = (_load(folder, name) for name in ("speed", "paper_protocol", "gpu_check"))
    if speed:
        for setting in speed["settings"]:
            for engine in ("naive", "iem"):
                entry = setting["engines"][engine]
                lines.append(_row(f"{LABELS[engine]}, 64 horses, released", "cpu", setting["threads"],
                                  "wall" if setting["clock"] == "wall" else "process CPU", f"{entry['images_per_s']:.2f}",
                                  f"{entry['ms_per_image_iteration']:.3f}", f"{entry['ratio']:.1f}x",
                                  "`python -m benchmarks.speed`"))
    if paper:
        run = paper["runs"]["early_exit"]
        lines.append(_row(f"iem, paper protocol, {paper['images']} images x 3 squares", paper["device"], paper["threads"],
                          "wall", f"{run['images_per_s']:.1f}", f"{run['ms_per_image_iteration']:.3f}", "-",
                          "`python -m benchmarks.paper_protocol`"))
    if gpu and gpu.get("cuda"):
        for label, _, _, per_s, ms, ratio in gpu_rows(gpu):
            lines.append(_row(label, "cuda", "-", "wall", per_s, ms, ratio, "`bash benchmarks/gpu_check.sh`"))
    return lines if len(lines) > 2 else []


TABLES = {"speed": speed_table, "paper_protocol": paper_table, "memory": memory_table, "gpu_check": gpu_table}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.table",
        description="Print Markdown tables of the benchmark results (for docs/speed.md).",
        epilog="Example: python -m benchmarks.table --results benchmarks/results",
    )
    parser.add_argument("--results", type=Path, default=common.RESULTS_DIR, help="folder of the JSON results")
    args = parser.parse_args(argv)
    summary = summary_table(args.results)
    if summary:
        print("### summary\n")
        print("\n".join(summary))
        print()
    found = 0
    for name, make in TABLES.items():
        data = _load(args.results, name)
        if data is None:
            continue
        found += 1
        print(f"### {name}\n")
        print("\n".join(make(data)))
        print()
    if not found:
        print(f"no results in {args.results}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
