"""Quality against the training-patch budget: how many patches a fit needs.

Usage (a quiet machine)::

    python benchmarks/patch_budget.py                                  # both scenes, default budgets
    python benchmarks/patch_budget.py --epochs 30 --budgets 128 256 512 1024 2048 0

Each scene has no reference, so it is scored as ``fit-and-export`` scores such a scene: SSC-CNN is
fitted two scales down (:func:`ssc_edge.train.fit.fit_sampled`, ``levels=2``) on a budget of patches
drawn uniformly from those free of no-data, and scored one scale down against the observed 20 m bands
(:func:`ssc_edge.train.fit.score_windows`, the whole evaluation grid). Budget 0 means every patch.

Scenes: ``coastal``, the full Coastal scene (``CoastalA_cell.mat``, 408 x 408: 121 patches two scales
down); ``mosaic``, a 2048 x 2048 mosaic of four real scenes mirrored and tiled
(``benchmarks/_mosaic.py``: 3,969 patches two scales down). Optimizer steps grow with the budget
(epochs x budget / batch), as in ``fit-and-export``; ``--steps N`` instead gives every budget the same
number of steps (epochs = N / batches per epoch; an approximation when the scene has no-data), which
separates what a smaller sample of patches loses from what fewer steps lose. The moving average of the weights is off
(``ema 0``: the best epoch is kept) because an average with a 50-epoch horizon is not meaningful in
the shortened fits that fit this benchmark on 2 shared cores.

Writes ``benchmarks/results/patch_budget.{json,md}`` (machine, command, one row per scene and budget:
mean SRE and SAM of the model and of bicubic, patches drawn and offered, fit seconds, peak RSS).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", default=["coastal", "mosaic"], choices=["coastal", "mosaic"])
    parser.add_argument("--budgets", nargs="+", type=int, default=[32, 64, 128, 256, 512, 1024, 2048, 0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument(
        "--steps",
        type=int,
        default=0,
        help="Instead of --epochs: the same number of optimizer steps for every budget (epochs = steps / batches).",
    )
    parser.add_argument("--size", type=int, default=2048, help="Side of the mosaic, 10 m pixels.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--xla", action="store_true", help="Compile the training step with XLA (every budget alike; about 1.3x faster)."
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)

    from _mosaic import MosaicSource

    from ssc_edge import sampling
    from ssc_edge.io import read_scene
    from ssc_edge.train.fit import FitConfig, _training_window_pair, fit_sampled, pair_model_for, score_windows
    from ssc_edge.train.report import machine_info
    from ssc_edge.train.windows import scene_source, training_grid

    rows = []
    for name in args.scenes:
        source = scene_source(read_scene(DATA / "CoastalA_cell.mat")) if name == "coastal" else MosaicSource(args.size)
        # the default pair (degradation and registration auto), estimated once per scene as fit-and-export does:
        # the budgets below change only epochs, budget and XLA, none of which the estimate reads
        pair = pair_model_for(source, FitConfig())
        done_all = False
        for budget in args.budgets:
            if done_all:
                break
            epochs = args.epochs
            if args.steps:  # batches per epoch follow from the patches the budget draws
                offered = sampling.origin_grid(training_grid(source.shape, 2), patch=16, stride=8)
                drawn = min(budget or 10**9, offered[0] * offered[1])
                epochs = max(1, round(args.steps / -(-drawn // 64)))
            config = FitConfig(epochs=epochs, ema=0, seed=args.seed, patch_budget=budget or 10**9, jit_compile=args.xla)
            start = time.perf_counter()
            fit = fit_sampled(source, config, levels=2, pair=pair)
            fit_seconds = time.perf_counter() - start
            done_all = fit.patches == fit.candidates  # a larger budget would draw the same patches
            start = time.perf_counter()
            pairs = _training_window_pair(source, config, 1, pair=pair)
            (model,), bicubic, _, pixels, sampled = score_windows(
                pairs, training_grid(source.shape, 1), [fit.model], fit.scale, seed=args.seed
            )
            row = {
                "scene": name,
                "budget": budget or "all",
                "patches": fit.patches,
                "candidates": fit.candidates,
                "windows": fit.windows,
                "epochs": epochs,
                "steps": epochs * -(-fit.patches // config.batch_size),
                "xla": args.xla,
                "mean_sre": round(model.mean_sre, 3),
                "sam": round(model.sam, 4),
                "bicubic_mean_sre": round(bicubic.mean_sre, 3),
                "scored_pixels": pixels,
                "scored_sample": sampled,
                "fit_seconds": round(fit_seconds, 1),
                "score_seconds": round(time.perf_counter() - start, 1),
                "peak_rss_mib": round(_peak_rss_mib()),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    for name in args.scenes:
        every = [r for r in rows if r["scene"] == name]
        best = every[-1]["mean_sre"]
        for r in every:
            r["delta_to_all_db"] = round(r["mean_sre"] - best, 3)
    args.out.mkdir(parents=True, exist_ok=True)
    command = ("python benchmarks/patch_budget.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    result = {"command": command, "machine": machine_info(), "rows": rows}
    (args.out / "patch_budget.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Quality against the patch budget (fit two scales down, scored one scale down)\n",
        f"Command: `{command}`  ",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores\n",
        "| scene | budget | patches drawn / offered | windows | steps | mean SRE (dB) | vs all (dB) | SAM (deg) "
        "| bicubic (dB) | fit (s) | peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {r['scene']} | {r['budget']} | {r['patches']} / {r['candidates']} | {r['windows']} | {r['steps']} | "
            f"{r['mean_sre']:.2f} | {r['delta_to_all_db']:+.2f} | {r['sam']:.3f} | {r['bicubic_mean_sre']:.2f} | "
            f"{r['fit_seconds']} | {r['peak_rss_mib']} |"
            for r in rows
        ),
    ]
    (args.out / "patch_budget.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
