"""Quality of the 60 m model (B01, B09) against bicubic, on the real scenes and a simulated one with known truth.

Usage::

    python benchmarks/sixty_quality.py                      # every case, 200 epochs (several minutes on 2 cores)
    python benchmarks/sixty_quality.py --epochs 5 --out /tmp/q60 --cases coastal   # quick check of the script

Cases and what each number is:

- ``coastal``, ``l1c`` (real 60 m bands: the full Coastal scene, 408 px, 60 m bands 68 x 68; the real L1C
  crop, 300 px, 60 m bands 50 x 50). The held-out evaluation one more scale of 6 down is infeasible here: the
  training image two scales down is 11 x 11 (Coastal) or 8 x 8 (L1C) pixels, smaller than one 16-pixel patch.
  Two numbers instead, both against the observed 60 m bands at the ratio-6 scale (inputs degraded by 6):
  ``spatial-holdout``: the model is fitted on the pair's left half only and scored on its right half, whose
  targets it never saw (held-out pixels, same scale); ``training-pair``: the zero-shot model fitted on the
  whole pair and scored on it (TRAINING-SET numbers).
- ``simulated`` (the synthetic demo scene at 720 px, whose 60 m bands are the MTF-degraded 10 m truth): the
  zero-shot model is fitted on the scene's own ratio-6 pair and sharpens the scene at full scale; B01/B09 are
  scored against their 10 m truth, never seen (held out, at the real scale). Synthetic texture, known truth.
- ``shifted``: the same generator with an 18 px margin, the 60 m bands made from the 10 m truth moved by
  ``--shift`` 10 m px (their grid sits that far from the nominal one, as a real 60 m band may); scored
  against the truth where the 60 m grid is (the model keeps each band where it was observed, as the 20 m
  model does). With ``--pairs config truth`` it is fitted twice: with the pair ``--degradation`` and
  ``--registration`` make, and with the pair told the simulation's truth (the nominal MTF Gaussians at
  ratio 6 and the true offset).

``--holdout-only`` skips the real scenes' training-pair rows. ``--degradation auto`` (the default of
``fit-and-export``) builds each pair from the scene's estimated registration and relative blur
(:func:`ssc_edge.train.bandsets.sixty_pair_for`); the bicubic column then upsamples that pair's input, so
compare the model columns across pairs, not the gains.

Writes ``sixty_quality.{json,md}`` with the machine and the command.
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
DATA = REPO.parent / "shared" / "data"
REAL = {"coastal": DATA / "CoastalA_cell.mat", "l1c": DATA / "real" / "l1c_T31TDH_20150726_crop"}


def _scores(reference: np.ndarray, estimate: np.ndarray) -> dict:
    from ssc_edge.bands import VERY_COARSE_BANDS
    from ssc_edge.metrics import quality_report

    report = quality_report(reference, estimate, band_names=VERY_COARSE_BANDS)
    return {"sre": [round(float(v), 3) for v in report.sre], "mean_sre": round(float(report.mean_sre), 3),
            "sam": round(float(report.sam), 4)}  # fmt: skip


def _row(case: str, kind: str, reference, estimate, bicubic, seconds: float) -> dict:
    model, base = _scores(reference, estimate), _scores(reference, bicubic)
    return {"case": case, "kind": kind, "model": model, "bicubic": base,
            "gain_db": round(model["mean_sre"] - base["mean_sre"], 3), "fit_seconds": round(seconds, 1)}  # fmt: skip


def real_case(name: str, config, *, holdout_only: bool = False) -> list[dict]:
    from ssc_edge.bands import VERY_COARSE_BANDS
    from ssc_edge.bandset import ratio_training_pair
    from ssc_edge.io import read_scene
    from ssc_edge.train.bandsets import sixty_pair_for
    from ssc_edge.train.fit import fit_model, predict

    scene = read_scene(REAL[name])
    model, metadata = sixty_pair_for(scene, config)
    pair = ratio_training_pair(scene, VERY_COARSE_BANDS, levels=1, model=model)
    x, y = pair.inputs, pair.target
    half = x.shape[1] // 2
    rows = []
    fit = fit_model(x[:, :half], y[:, :half], config)
    estimate = predict(fit.model, x, fit.scale)[:, half:]
    rows.append(_row(name, "spatial-holdout", y[:, half:], estimate, x[:, half:, :2], fit.seconds))
    rows[-1]["pair"] = _pair_text(metadata)
    if holdout_only:
        return rows
    fit = fit_model(x, y, config)
    rows.append(
        _row(name, "training-pair (TRAINING-SET)", y, predict(fit.model, x, fit.scale), x[..., :2], fit.seconds)
    )
    return rows


def simulated_case(config, *, size: int, seed: int) -> list[dict]:
    """The demo scene rebuilt with its 10 m truth of every band (same generator calls as ``demo_scene``)."""
    from ssc_edge import demo
    from ssc_edge.bands import ALL_BANDS, VERY_COARSE_BANDS
    from ssc_edge.bandset import SIXTY_INPUT_BANDS, ratio_training_pair, stack_bands
    from ssc_edge.train.fit import fit_model
    from ssc_edge.wald import degrade

    scene = demo.demo_scene(size=size, seed=seed)
    rng = np.random.default_rng(seed)
    abundances = demo._land_cover(rng, size)
    reflectance = abundances @ demo._ENDMEMBERS.astype(np.float32)
    reflectance += rng.standard_normal(reflectance.shape, dtype=np.float32) * np.float32(demo._NOISE)
    dn = np.clip(reflectance * 10000, 1, None).astype(np.float32)
    truth = dn[..., [ALL_BANDS.index(b) for b in VERY_COARSE_BANDS]]
    check = degrade(truth, ratio=6, method="mtf", mtf=[demo.MTF_NYQUIST[b] for b in VERY_COARSE_BANDS])
    assert np.allclose(check, np.stack([scene.bands[b] for b in VERY_COARSE_BANDS], -1), rtol=1e-5), "truth mismatch"
    from ssc_edge.train.bandsets import sixty_pair_for

    model, metadata = sixty_pair_for(scene, config)
    pair = ratio_training_pair(scene, VERY_COARSE_BANDS, levels=1, model=model)
    fit = fit_model(pair.inputs, pair.target, config)
    full = stack_bands(scene.bands, SIXTY_INPUT_BANDS, scene.shape, upsampling="bicubic")
    estimate = _predict_tiled(fit.model, full, fit.scale)
    row = _row(f"simulated-{size}-seed{seed}", "full-scale vs 10 m truth (held out)", truth, estimate, full[..., :2],
               fit.seconds)  # fmt: skip
    return [row | {"pair": _pair_text(metadata)}]


def _pair_text(metadata: dict) -> str:
    """The estimated 60 m offset and kernel of a pair's metadata, or "nominal"."""
    from ssc_edge.registration import MAX_SPREAD

    if not metadata:
        return "nominal"
    estimate = metadata["estimate"]
    offset, kernel = estimate["offset"], estimate["kernel"]
    blur = f"gaussian {kernel['sigma']:.2f} px" if kernel["kind"] == "gaussian" else kernel["kind"]
    text = f"60 m offset {offset[0]:+.2f},{offset[1]:+.2f}; {blur}"
    spread = estimate.get("spread")
    if spread is not None and not float(spread) <= MAX_SPREAD:
        text += f"; NOT used (quadrants differ by {float(spread):.2f} px): nominal 60 m pair"
    return text


def simulated_sixty_scene(*, size: int, seed: int, shift: tuple[int, int], mtf60: float | None = None):
    """The demo generator with a margin; the 60 m bands from the 10 m truth moved ``shift`` 10 m px.

    ``mtf60``: one MTF gain at Nyquist for both 60 m bands (default: each band's nominal one). Returns
    ``(scene, truth (size, size, 2) DN, told)``: ``told`` the ratio-6 pair that made the scene.
    """
    from ssc_edge import demo
    from ssc_edge.bands import ALL_BANDS, COARSE_BANDS, FINE_BANDS, MTF_NYQUIST, VERY_COARSE_BANDS
    from ssc_edge.bandset import SIXTY_INPUT_BANDS, RatioPairModel
    from ssc_edge.scene import Scene
    from ssc_edge.wald import Kernel, degrade, mtf_sigma

    margin = 18
    rng = np.random.default_rng(seed)
    abundances = demo._land_cover(rng, size + 2 * margin)
    reflectance = abundances @ demo._ENDMEMBERS.astype(np.float32)
    reflectance += rng.standard_normal(reflectance.shape, dtype=np.float32) * np.float32(demo._NOISE)
    dn = np.clip(reflectance * 10000, 1, None).astype(np.float32)
    index = [ALL_BANDS.index(b) for b in VERY_COARSE_BANDS]
    here = dn[margin : margin + size, margin : margin + size]
    moved = dn[margin + shift[0] : margin + shift[0] + size, margin + shift[1] : margin + shift[1] + size]
    truth = moved[..., index]  # 60 m pixel i sits at 6 i + 2.5 + shift: its 10 m truth is the moved crop
    bands = {b: here[..., ALL_BANDS.index(b)] for b in FINE_BANDS}
    coarse = degrade(here[..., [ALL_BANDS.index(b) for b in COARSE_BANDS]], ratio=2, method="mtf",
                     mtf=[MTF_NYQUIST[b] for b in COARSE_BANDS])  # fmt: skip
    gains = {b: MTF_NYQUIST[b] if mtf60 is None else mtf60 for b in VERY_COARSE_BANDS}
    sixty = degrade(truth, ratio=6, method="mtf", mtf=[gains[b] for b in VERY_COARSE_BANDS])
    bands |= {b: coarse[..., i].astype(np.float32) for i, b in enumerate(COARSE_BANDS)}
    bands |= {b: sixty[..., i].astype(np.float32) for i, b in enumerate(VERY_COARSE_BANDS)}
    scene = Scene(bands=bands, name=f"simulated-{size}-shift{shift[0]}{shift[1]:+d}")
    told = RatioPairModel(
        kernels={b: Kernel("gaussian", mtf_sigma(gains.get(b, MTF_NYQUIST[b]), ratio=6)) for b in SIXTY_INPUT_BANDS},
        offsets={b: (float(shift[0]), float(shift[1])) for b in VERY_COARSE_BANDS},
    )
    return scene, truth, told


def shifted_case(config, *, size: int, seed: int, shift: tuple[int, int], pairs: list[str]) -> list[dict]:
    """The demo generator with a margin; the 60 m bands from the 10 m truth moved ``shift`` 10 m px."""
    from ssc_edge.bands import VERY_COARSE_BANDS
    from ssc_edge.bandset import SIXTY_INPUT_BANDS, ratio_training_pair, stack_bands
    from ssc_edge.train.bandsets import sixty_pair_for
    from ssc_edge.train.fit import fit_model

    scene, truth, told = simulated_sixty_scene(size=size, seed=seed, shift=shift)
    full = stack_bands(scene.bands, SIXTY_INPUT_BANDS, scene.shape, upsampling="bicubic")
    rows = []
    for label in pairs:
        model, metadata = (told, {}) if label == "truth" else sixty_pair_for(scene, config)
        pair = ratio_training_pair(scene, VERY_COARSE_BANDS, levels=1, model=model)
        fit = fit_model(pair.inputs, pair.target, config)
        estimate = _predict_tiled(fit.model, full, fit.scale)
        kind = f"full-scale vs 10 m truth (held out), pair: {label}"
        rows.append(_row(scene.name, kind, truth, estimate, full[..., :2], fit.seconds))
        rows[-1]["pair"] = "told the truth" if label == "truth" else _pair_text(metadata)
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _predict_tiled(model, image: np.ndarray, scale: float, *, tile: int = 180, halo: int = 8) -> np.ndarray:
    """Keras prediction window by window (bounded memory); exact for halo >= the receptive radius."""
    from ssc_edge.tiling import plan_tiles
    from ssc_edge.train.fit import predict

    out = np.empty((*image.shape[:2], 2), np.float32)
    for planned in plan_tiles(image.shape[:2], tile=tile, halo=halo):
        window = predict(model, image[planned.window.slices], scale)
        out[planned.core.slices] = window[planned.core.relative_to(planned.window).slices]
    return out


def _markdown(rows: list[dict], command: str, machine: dict) -> str:
    lines = [
        "| case | evaluation | SRE B01 / B09 (dB) | mean SRE (dB) | SAM (deg) | bicubic mean SRE (dB) | bicubic SAM "
        "| gain (dB) | fit (s) | pair |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m, b = r["model"], r["bicubic"]
        lines.append(
            f"| {r['case']} | {r['kind']} | {m['sre'][0]:.2f} / {m['sre'][1]:.2f} | {m['mean_sre']:.2f} | "
            f"{m['sam']:.3f} | {b['mean_sre']:.2f} | {b['sam']:.3f} | {r['gain_db']:+.2f} | {r['fit_seconds']:.0f} | "
            f"{r.get('pair', 'nominal')} |"
        )
    return f"`{command}`\n\nMachine: {machine['cpu']}, {machine['cores']} cores.\n\n" + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    sys.path.insert(0, str(REPO))
    from ssc_edge.train.fit import FitConfig
    from ssc_edge.train.report import machine_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["coastal", "l1c", "simulated"])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--degradation", default="mtf", choices=["auto", "mtf", "bicubic"])
    parser.add_argument("--registration", default="none", choices=["auto", "none"])
    parser.add_argument("--shift", default="2,-1", help="rows,cols (10 m px, integers) of the 60 m grid, 'shifted'")
    parser.add_argument("--pairs", nargs="+", default=["config"], choices=["config", "truth"])
    parser.add_argument("--holdout-only", action="store_true", help="real scenes: the spatial hold-out row only")
    parser.add_argument("--size", type=int, default=720, help="side of the simulated scene, 10 m px (multiple of 36)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=128, help="filters per 3x3 convolution (the default model: 128)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "sixty_quality")
    args = parser.parse_args(argv)
    from ssc_edge.train.model import ModelConfig

    model = ModelConfig(width=args.width, skip_width=max(4, round(25 * args.width / 128)))
    config = replace(
        FitConfig(), epochs=args.epochs, degradation=args.degradation, registration=args.registration, seed=args.seed,
        model=model,
    )  # fmt: skip
    shift = tuple(int(v) for v in args.shift.split(","))
    rows = []
    start = time.perf_counter()
    for case in args.cases:
        if case == "simulated":
            rows += simulated_case(config, size=args.size, seed=args.seed)
        elif case == "shifted":
            rows += shifted_case(config, size=args.size, seed=args.seed, shift=shift, pairs=args.pairs)
        else:
            rows += real_case(case, config, holdout_only=args.holdout_only)
        print(json.dumps(rows[-1]), flush=True)
    command = "python benchmarks/sixty_quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
    machine = machine_info()
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"command": command.strip(), "machine": machine, "config": config.to_dict(), "rows": rows,
              "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
    (args.out / "sixty_quality.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "sixty_quality.md").write_text(_markdown(rows, command.strip(), machine))
    print(_markdown(rows, command.strip(), machine))


if __name__ == "__main__":
    main()
