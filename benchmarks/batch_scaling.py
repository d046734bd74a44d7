"""Batch throughput: the local engine at 1 and 2 workers against the Ray engine on the same batch.

Usage::

    python benchmarks/batch_scaling.py                       # 4 scenes of 512^2 and one of 2048^2, 3 repeats
    python benchmarks/batch_scaling.py --scenes 8 --size 1024 --repeats 1
    python benchmarks/batch_scaling.py --split-size 0        # without the one-large-scene split runs

The scenes are synthetic demo scenes (:func:`ssc_edge.demo.demo_scene`, seeds 0..N-1) saved as .npz in
``--work``. Every run is ``run_batch(..., BatchConfig(mode="infer", model=MODEL, workers=W,
output_format="npz"))`` into a fresh output folder, timed around the call (reading, sharpening,
consistency metrics and atomic writes of every scene, and the pool or actor start-up):

- ``local`` at 1 and 2 workers (spawned processes, onnxruntime threads = cores / workers);
- ``ray`` at 1 and 2 workers on a local Ray started once beforehand with ``num_cpus`` = cores
  (what ``--engine ray`` starts by itself; its start-up is timed apart, ``ray_start_seconds``);
- with ``--split-size`` S > 0, one S x S scene on 2 Ray workers, whole (``split`` 1: one worker
  busy) and in 2 row bands (``split`` 2), against local at 1 worker.

Each configuration runs ``--repeats`` times, interleaved; the table gives the median and the best.
Scaling = time at 1 worker / time at 2 workers; Ray overhead = Ray time / local time - 1 at the same
worker count. The machine's load average before and after is recorded: on a shared machine the
numbers are noisy. Writes ``benchmarks/results/batch_scaling.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def build_scenes(folder: Path, count: int, size: int, *, prefix: str = "scene") -> list[Path]:
    """Write ``count`` demo scenes of ``size`` x ``size`` 10 m pixels as .npz (cached); return their paths."""
    from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
    from ssc_edge.demo import demo_scene

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(count):
        path = folder / f"{prefix}{seed:02d}_{size}.npz"
        if not path.is_file():
            scene = demo_scene(size=size, seed=seed)
            np.savez(path, **{band: scene.bands[band] for band in FINE_BANDS + COARSE_BANDS})
        paths.append(path)
    return paths


def timed_batch(inputs: list[Path], out: Path, *, engine: str, workers: int, model: Path, split: int = 1) -> dict:
    """One batch into a fresh ``out``; wall seconds and what the manifest says."""
    from ssc_edge.batch import BatchConfig, run_batch

    shutil.rmtree(out, ignore_errors=True)
    config = BatchConfig(mode="infer", model=model, workers=workers, output_format="npz", split=split)
    start = time.perf_counter()
    result = run_batch(inputs, out, config, engine=engine)
    seconds = time.perf_counter() - start
    failed = [r["error"] for r in result.records if r["status"] != "done"]
    if failed:
        raise RuntimeError(f"{engine} x{workers}: scenes failed: {failed}")
    sharpen = [r["seconds"]["sharpen"] for r in result.records]
    return {"seconds": seconds, "mean_sharpen_seconds": statistics.fmean(sharpen)}


def summarize(samples: list[dict], scenes: int) -> dict:
    walls = [s["seconds"] for s in samples]
    median = statistics.median(walls)
    return {
        "median_seconds": round(median, 2),
        "best_seconds": round(min(walls), 2),
        "all_seconds": [round(w, 2) for w in walls],
        "scenes_per_second": round(scenes / median, 3),
        "mean_sharpen_seconds_per_scene": round(statistics.fmean(s["mean_sharpen_seconds"] for s in samples), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--size", type=int, default=512, help="scene side, 10 m pixels")
    parser.add_argument("--split-size", type=int, default=2048, help="side of the one split scene (0: skip)")
    parser.add_argument("--model", type=Path, default=REPO / "models" / "demo.onnx")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=REPO / "build" / "batch_scaling", help="scenes and outputs")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)

    import ray

    from ssc_edge.train.report import machine_info

    load_before = os.getloadavg()
    inputs = build_scenes(args.work / "scenes", args.scenes, args.size)
    big = build_scenes(args.work / "big", 1, args.split_size, prefix="big") if args.split_size else []
    cores = os.cpu_count() or 1
    tick = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, logging_level="error")
    ray_start = time.perf_counter() - tick

    runs: dict[str, tuple[list[Path], str, int, int]] = {
        "local x1": (inputs, "local", 1, 1),
        "local x2": (inputs, "local", 2, 1),
        "ray x1": (inputs, "ray", 1, 1),
        "ray x2": (inputs, "ray", 2, 1),
    }
    if big:
        runs.update({"big local x1": (big, "local", 1, 1), "big ray x2 whole": (big, "ray", 2, 1),
                     "big ray x2 split 2": (big, "ray", 2, 2)})  # fmt: skip
    samples: dict[str, list[dict]] = {name: [] for name in runs}
    try:
        for repeat in range(args.repeats):
            for name, (scenes, engine, workers, split) in runs.items():
                out = args.work / "out" / name.replace(" ", "_")
                sample = timed_batch(scenes, out, engine=engine, workers=workers, model=args.model, split=split)
                samples[name].append(sample)
                print(f"repeat {repeat + 1}: {name}: {sample['seconds']:.2f} s", file=sys.stderr, flush=True)
    finally:
        ray.shutdown()
    load_after = os.getloadavg()

    table = {name: summarize(s, len(runs[name][0])) for name, s in samples.items()}
    ratio = lambda a, b: round(table[a]["median_seconds"] / table[b]["median_seconds"], 2)
    derived = {
        "local_scaling_1_to_2_workers": ratio("local x1", "local x2"),
        "ray_scaling_1_to_2_workers": ratio("ray x1", "ray x2"),
        "ray_overhead_vs_local_1_worker": round(ratio("ray x1", "local x1") - 1, 3),
        "ray_overhead_vs_local_2_workers": round(ratio("ray x2", "local x2") - 1, 3),
        "ray_start_seconds": round(ray_start, 2),
    }
    if big:
        derived["split_2_speedup_vs_whole_on_ray"] = ratio("big ray x2 whole", "big ray x2 split 2")
        derived["split_2_on_ray_vs_local_1_worker"] = ratio("big local x1", "big ray x2 split 2")
    report: dict[str, Any] = {
        "benchmark": "batch_scaling",
        "model": str(args.model.relative_to(REPO) if args.model.is_relative_to(REPO) else args.model),
        "scenes": args.scenes,
        "size": args.size,
        "split_size": args.split_size,
        "repeats": args.repeats,
        "machine": {
            **machine_info(),
            "ray": ray.__version__,
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
        "note": "shared machine: other jobs (a training run) may have used the same cores; see the load averages",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "runs": table,
        "derived": derived,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batch_scaling.json").write_text(json.dumps(report, indent=2) + "\n")
    machine = report["machine"]
    lines = [
        "# Batch throughput: local engine against Ray, 1 and 2 workers",
        "",
        f"{args.scenes} synthetic demo scenes of {args.size}^2 (10 m px), mode infer with `{report['model']}`, "
        f"output npz; median of {args.repeats} runs (best in brackets). {machine['cpu']}, {machine['cores']} cores, "
        f"ray {machine['ray']}. Load average before {load_before[0]:.2f}, after {load_after[0]:.2f}: "
        f"{report['note']}.",
        "",
        "| run | scenes | wall (s) | scenes/s | sharpen s/scene |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {len(runs[name][0])} | {row['median_seconds']} ({row['best_seconds']}) | "
        f"{row['scenes_per_second']} | {row['mean_sharpen_seconds_per_scene']} |"
        for name, row in table.items()
    ]
    lines += [
        "",
        f"- Scaling 1 -> 2 workers: local {derived['local_scaling_1_to_2_workers']}x, "
        f"Ray {derived['ray_scaling_1_to_2_workers']}x.",
        f"- Ray overhead against local: {derived['ray_overhead_vs_local_1_worker']:+.1%} at 1 worker, "
        f"{derived['ray_overhead_vs_local_2_workers']:+.1%} at 2 workers, on a running Ray; starting a local Ray "
        f"(what `--engine ray` does without `--ray-address`) adds {derived['ray_start_seconds']} s once.",
    ]
    if big:
        lines.append(
            f"- One {args.split_size}^2 scene on 2 Ray workers: split into 2 row bands is "
            f"{derived['split_2_speedup_vs_whole_on_ray']}x the whole-scene time; "
            f"{derived['split_2_on_ray_vs_local_1_worker']}x against local at 1 worker."
        )
    lines += ["", f"Command: `{report['command']}`", ""]
    (args.out / "batch_scaling.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {args.out / 'batch_scaling.json'} and {args.out / 'batch_scaling.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
