"""Issue 31, "a prior model fitted on scenes you simulate and fine-tuned per scene": fewer epochs from a prior?

Usage::

    python benchmarks/prior_init.py                       # prior on 6 synthetic scenes, 4 simulated-truth cases
    python benchmarks/prior_init.py --cases real:mtf-nominal:2,-1 --epochs 10 --prior-seeds 100 --out /tmp/p

1. The prior: one SSC-CNN fitted (the default fit, no stage) on the pooled reduced-resolution training patches of
   ``--prior-seeds`` synthetic demo scenes (``ssc_edge.demo.demo_scene``: made-up land cover, none of the textures
   the cases are made from, so the prior has seen nothing of the scenes it is tried on).
2. Each case (``benchmarks/full_resolution_stage.py``'s simulated RR scenes with a known 10 m truth) is fitted as the
   default fits it (estimated pair, no stage) for each of ``--epochs``, once from random weights and once starting
   from the prior, and scored against the truth. The default (50 epochs from random) is fitted here too.

The prior is given to the fit by wrapping ``ssc_edge.train.fit.build_ssc_cnn`` in this script (the package has no
such option: this measures whether it should). Writes ``prior_init.{json,md}``.
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


def fit_prior(seeds: list[int], size: int, config) -> tuple[list[np.ndarray], float]:
    """Weights of the default fit on the pooled training patches of the synthetic scenes; its seconds."""
    from ssc_edge.demo import demo_scene
    from ssc_edge.scene import Scene
    from ssc_edge.train.fit import fit_patches, pair_model_for, sample_patches, scene_source

    xs, ys = [], []
    for seed in seeds:
        scene = scene_source(Scene(bands=demo_scene(size=size, seed=seed).bands, name=f"demo-{seed}"))  # Wald pair
        pair = pair_model_for(scene, config)
        drawn = sample_patches(scene, config, levels=1, pair=pair)
        scale = np.float32(drawn.scale)
        xs.append(drawn.inputs / scale)
        ys.append(drawn.target / scale)
    start = time.perf_counter()
    fit = fit_patches(np.concatenate(xs), np.concatenate(ys), 1.0, config)
    return fit.model.get_weights(), time.perf_counter() - start


def run(rr, config, prior: list[np.ndarray] | None) -> tuple[float, float]:
    """(mean SRE against the truth, fit seconds) of the default fit of ``rr``, from ``prior`` when given."""
    from ssc_edge.train import fit as fit_module

    real_build = fit_module.build_ssc_cnn

    def build(*args, **kwargs):
        model = real_build(*args, **kwargs)
        if prior is not None and kwargs.get("name") == "ssc_cnn_train":
            model.set_weights(prior)
        return model

    fit_module.build_ssc_cnn = build
    try:
        pair = fit_module.pair_model_for(rr, config)
        fit = fit_module.fit_scene(rr, config, pair=pair)
        return round(fit_module.evaluate_fit(rr, fit, pair=pair).model.mean_sre, 3), round(fit.seconds, 1)
    finally:
        fit_module.build_ssc_cnn = real_build


def main(argv: list[str] | None = None) -> int:
    import full_resolution_stage as frs

    from ssc_edge.train.fit import FitConfig
    from ssc_edge.train.report import machine_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", nargs="+", type=frs.parse_case, metavar="TEXTURE:KERNEL:SR,SC",
        default=[frs.parse_case(c) for c in ("real:mtf-nominal:2,-1", "coastal:mtf-nominal:0,0",
                                               "real:imresize:-1,1", "coastal:mtf-0.4:0,0")],
    )  # fmt: skip
    parser.add_argument("--epochs", nargs="+", type=int, default=[10, 20])
    parser.add_argument("--prior-seeds", nargs="+", type=int, default=[100, 101, 102, 103, 104, 105])
    parser.add_argument("--prior-size", type=int, default=384)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "prior_init")
    args = parser.parse_args(argv)
    base = replace(FitConfig(), stage_iterations=0)
    prior, prior_seconds = fit_prior(args.prior_seeds, args.prior_size, base)
    print(f"prior fitted in {prior_seconds:.1f} s", flush=True)
    rows, sources = [], {}
    for texture, kind, shift in args.cases:
        rr, _ = frs.simulate(texture, kind, shift, sources)
        row = {"case": f"{texture}:{kind}:{shift[0]},{shift[1]}"}
        row["default"], row["default_seconds"] = run(rr, base, None)
        for epochs in args.epochs:
            config = replace(base, epochs=epochs)
            row[f"random_{epochs}"], row[f"random_{epochs}_seconds"] = run(rr, config, None)
            row[f"prior_{epochs}"], row[f"prior_{epochs}_seconds"] = run(rr, config, prior)
        rows.append(row)
        print(json.dumps(row), flush=True)
    command = "python benchmarks/prior_init.py " + " ".join(argv if argv is not None else sys.argv[1:])
    machine = machine_info()
    head = "| case | default (50 ep., random) | " + " | ".join(
        f"{e} ep. random | {e} ep. prior | prior {e} - default" for e in args.epochs
    )
    lines = [f"`{command.strip()}`", "", f"Machine: {machine['cpu']}, {machine['cores']} cores. Prior: "
             f"{len(args.prior_seeds)} synthetic scenes of {args.prior_size} px, fitted in {prior_seconds:.0f} s.",
             "Mean SRE (dB) against the 10 m truth, no stage; fit seconds in brackets.", "", head + " |",
             "|---|" + "---:|" * (1 + 3 * len(args.epochs))]  # fmt: skip
    for r in rows:
        cells = [r["case"], f"{r['default']:.2f} ({r['default_seconds']:.0f})"]
        for e in args.epochs:
            cells += [f"{r[f'random_{e}']:.2f} ({r[f'random_{e}_seconds']:.0f})",
                      f"{r[f'prior_{e}']:.2f} ({r[f'prior_{e}_seconds']:.0f})",
                      f"{r[f'prior_{e}'] - r['default']:+.2f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"command": command.strip(), "machine": machine, "prior_seconds": round(prior_seconds, 1), "rows": rows}
    (args.out / "prior_init.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "prior_init.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
