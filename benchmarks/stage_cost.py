"""What the full-resolution stage's cost buys: stage settings compared from one reduced-resolution fit per case.

Usage::

    python benchmarks/stage_cost.py                                   # the cases below, every variant
    python benchmarks/stage_cost.py --cases real:mtf-0.4:0,0 --variants 100x2@1e-4 50x1@1e-4

For each simulated case of ``full_resolution_stage.py`` (known 10 m truth), the default reduced-resolution fit
is made once (``FitConfig`` with the stage off); each variant then copies that model and runs the stage with
``ITERATIONS x WINDOWS @ LEARNING_RATE [/ SIDE]`` (windows of SIDE px, 128 unless given, so
``pixels = WINDOWS * SIDE**2``; a scene with fewer pixels is taken whole), with the stage kernel the default
chooses. Every model is scored by mean SRE (dB) on the RR reference, as ``full_resolution_stage.py`` does, so the
columns differ only by the stage's settings.

Writes ``stage_cost.{json,md}`` under ``--out`` with the machine and the exact command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

import full_resolution_stage as frs  # noqa: E402

CASES = (
    ("coastal", "imresize", (0, 0)),
    ("coastal", "mtf-nominal", (0, 0)),
    ("coastal", "mtf-0.2", (-2, 0)),
    ("coastal", "mtf-0.4", (0, 0)),
    ("real", "imresize", (-1, 1)),
    ("real", "mtf-nominal", (2, -1)),
    ("real", "mtf-0.4", (0, 0)),
    ("real", "mtf-0.6", (-1, -2)),
    ("reykjavik", "mtf-nominal", (0, 0)),
)
VARIANTS = ("100x2@1e-4", "50x2@1e-4", "50x1@1e-4", "25x1@1e-4", "50x1@2e-4", "25x1@2e-4")


def parse_variant(text: str) -> tuple[int, int, float, int]:
    """``"50x1@1e-4"`` -> (50 iterations, 1 window, lr 1e-4, side 128); ``"100x1@1e-4/96"``: windows of 96 px."""
    text, _, side = text.partition("/")
    steps, rest = text.split("x")
    windows, lr = rest.split("@")
    return int(steps), int(windows), float(lr), int(side or 128)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", type=frs.parse_case, default=CASES, metavar="TEXTURE:KERNEL:SR,SC")
    parser.add_argument("--variants", nargs="+", default=VARIANTS, metavar="STEPSxWINDOWS@LR")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "stage_cost")
    parser.add_argument("--note", default="", help="a line about the conditions")
    args = parser.parse_args(argv)
    from ssc_edge.train.fit import FitConfig, _full_resolution_stage, evaluate_fit, fit_scene, pair_model_for
    from ssc_edge.train.full_resolution import StageConfig
    from ssc_edge.train.model import build_ssc_cnn
    from ssc_edge.train.report import machine_info

    config = FitConfig(stage_iterations=0)
    machine = machine_info()
    result = {
        "command": "python benchmarks/stage_cost.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{machine['cpu']}, {machine['cores']} cores. {args.note}".strip(),
        "fit": json.dumps(config.to_dict(), separators=(",", ":")),
        "variants": list(args.variants),
        "rows": [],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    sources: dict = {}
    for texture, kind, shift in args.cases:
        rr, _ = frs.simulate(texture, kind, shift, sources)
        pair = pair_model_for(rr, config)
        fit = fit_scene(rr, config, pair=pair)
        row = {
            "texture": texture,
            "kernel": kind,
            "shift": list(shift),
            "before_stage": round(evaluate_fit(rr, fit, pair=pair).model.mean_sre, 3),
            "fit_seconds": round(fit.seconds, 1),
        }
        weights = fit.model.get_weights()
        for variant in args.variants:
            steps, windows, lr, side = parse_variant(variant)
            model = build_ssc_cnn(config.model, seed=None, precision="float32", input_channels=10, output_channels=6)
            model.set_weights(weights)
            trial = replace(fit, model=model, config=replace(config, stage_iterations=steps))
            settings = StageConfig(iterations=steps, learning_rate=lr, pixels=windows * side**2, window=side)
            start = time.perf_counter()
            stage = _full_resolution_stage(trial, rr, pair, levels=1, progress=None, settings=settings)
            row[variant] = {
                "sre": round(evaluate_fit(rr, trial, pair=pair).model.mean_sre, 3),
                "seconds": round(time.perf_counter() - start, 1),
                "pixels": stage["pixels"],
                "kernel": stage["kernel"],
                "kept": stage["kept"],
            }
            print(texture, kind, shift, variant, row[variant], flush=True)
        result["rows"].append(row)
        (args.out / "stage_cost.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out / "stage_cost.md").write_text(_markdown(result))
    print(_markdown(result))
    return 0


def _markdown(result: dict) -> str:
    variants = result["variants"]
    lines = [
        f"Command: `{result['command']}`",
        "",
        f"Machine: {result['machine']}",
        "",
        "Mean SRE (dB) on the RR reference; each variant starts from the same reduced-resolution fit "
        "(STEPSxWINDOWS@LR: Adam steps x 128 px windows @ learning rate; stage seconds in brackets).",
        "",
        "| texture | kernel | shift | before stage | " + " | ".join(variants) + " |",
        "|---|---|---|---:|" + "---:|" * len(variants),
    ]
    for row in result["rows"]:
        cells = [f"{row[v]['sre']:.2f} ({row[v]['seconds']:.0f})" for v in variants if v in row]
        shift = ", ".join(f"{s:+d}" for s in row["shift"])
        lines.append(
            f"| {row['texture']} | {row['kernel']} | {shift} | {row['before_stage']:.2f} | " + " | ".join(cells) + " |"
        )
    lines.append("")
    if result["rows"] and variants:
        first = variants[0]
        for v in variants[1:]:
            diffs = [row[v]["sre"] - row[first]["sre"] for row in result["rows"] if v in row and first in row]
            if diffs:
                lines.append(
                    f"{v} - {first}: min {min(diffs):+.2f}, median {float(np.median(diffs)):+.2f}, "
                    f"max {max(diffs):+.2f} dB over {len(diffs)} cases"
                )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
