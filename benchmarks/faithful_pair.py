"""Registration and degradation estimated from the scene, on RR scenes whose truth is known.

Usage::

    python benchmarks/faithful_pair.py --estimate                 # every kernel x offset, both scenes (cheap)
    python benchmarks/faithful_pair.py --fit --epochs 200         # default vs told-the-truth fits, FIT_CASES
    python benchmarks/faithful_pair.py --estimate --fit --epochs 20 --out /tmp/fp   # quick check
    python benchmarks/faithful_pair.py --fit --cases coastal:mtf-0.4:0,0 --epochs 100   # chosen cases
    python benchmarks/faithful_pair.py --blur-sweep               # estimated vs simulated blur (cheap)

RR scenes are simulated from the full-resolution scenes (the full Coastal cell and the real L1C
crop of ``../shared/data/real``) with a known kernel, applied to both band groups as the Wald
protocol does (``imresize``: MATLAB ``imresize(x, 0.5)``; ``mtf-nominal``: each band's Gaussian of
its nominal MTF at Nyquist; ``mtf-G``: one Gaussian of MTF gain G for all bands), and a known offset
between the 20 m and 10 m grids: the 10 m bands are cut ``s`` source pixels (10 m) further than
twice the 20 m bands' origin, so the RR 20 m grid sits ``d = -s / 2`` RR fine pixels from its
nominal place (``s`` in {0, +-1, +-2}: ``d`` in {0, -+0.5, -+1}). The reference is the source's
20 m bands, where their grid is: a model that keeps the 20 m grid's offset is scored where the
band truly is.

``--estimate`` runs :func:`ssc_edge.registration.estimate_registration` on every case; ``--fit``
fits SSC-CNN on ``FIT_CASES``: the default (``degradation auto``, ``registration auto``) and a fit
told the truth (the simulation's kernels and offset as its :class:`ssc_edge.wald.PairModel`), with
``--baseline`` also the earlier default (``bicubic``, no registration), all scored on the RR
reference. Writes ``faithful_pair.{json,md}`` with the machine and the exact command.
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
REAL = DATA / "real" / "l1c_T31TDH_20150726_crop"
KERNELS = ("imresize", "mtf-nominal", "mtf-0.2", "mtf-0.3", "mtf-0.4", "mtf-0.5", "mtf-0.6")
#: (s_rows, s_cols), source 10 m pixels: offsets 0, +-0.5, +-1 RR fine pixel in rows, in cols, and in both.
SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (2, -2), (-2, 2), (2, 1), (-1, -2))
#: (scene, kernel, (s_rows, s_cols)): a representative subset for the fits.
FIT_CASES = (
    ("coastal", "imresize", (1, 1)),
    ("coastal", "mtf-nominal", (0, 0)),
    ("coastal", "mtf-0.2", (-2, 0)),
    ("real", "imresize", (-1, 1)),
    ("real", "mtf-nominal", (2, -1)),
    ("real", "mtf-0.4", (0, 0)),
)
_MARGIN = 4  # source 10 m pixels kept free around the crop for the shifts


def full_scene(name: str):
    """The full-resolution source scene: ``"coastal"`` (CoastalA_cell.mat) or ``"real"`` (the L1C crop JP2s)."""
    from ssc_edge.io import read_scene
    from ssc_edge.scene import Scene

    if name == "coastal":
        return read_scene(DATA / "CoastalA_cell.mat")
    import rasterio

    bands = {}
    for band in ("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12"):
        with rasterio.open(REAL / f"T31TDH_20150726T105026_{band}.jp2") as src:
            bands[band] = src.read(1).astype(np.float32)
    return Scene(bands=bands, name="l1c-T31TDH-crop")


def kernels(kind: str):
    """(fine kernels, coarse kernels) of a simulation kernel name (``KERNELS``, or ``gauss-S``: one Gaussian of
    sigma ``S`` source pixels for all bands, :func:`blur_rows`)."""
    from ssc_edge.wald import Kernel, PairModel, mtf_sigma

    if kind == "imresize":
        model = PairModel.nominal("bicubic")
        return model.fine, model.coarse
    if kind == "mtf-nominal":
        model = PairModel.nominal("mtf")
        return model.fine, model.coarse
    family, value = kind.split("-")
    kernel = Kernel("gaussian", float(value) if family == "gauss" else mtf_sigma(float(value)))
    return (kernel,) * 4, (kernel,) * 6


def simulate(scene, kind: str, shift: tuple[int, int]):
    """The RR scene of ``scene`` with kernel ``kind`` and the 10 m crop moved ``shift`` source pixels.

    Returns the Scene (reference: the source 20 m bands) and the true PairModel (offset ``-shift / 2``).
    """
    from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
    from ssc_edge.scene import Scene
    from ssc_edge.wald import PairModel, decimate

    height, width = scene.shape
    size_r, size_c = ((n - 2 * _MARGIN) // 8 * 8 for n in (height, width))
    r, c = _MARGIN + shift[0], _MARGIN + shift[1]
    fine = scene.fine()[r : r + size_r, c : c + size_c]
    observed = scene.coarse()[_MARGIN // 2 : (_MARGIN + size_r) // 2, _MARGIN // 2 : (_MARGIN + size_c) // 2]
    fine_k, coarse_k = kernels(kind)
    fine_rr, coarse_rr = decimate(fine, fine_k), decimate(observed, coarse_k)
    bands = {b: fine_rr[..., i] for i, b in enumerate(FINE_BANDS)} | {
        b: coarse_rr[..., i] for i, b in enumerate(COARSE_BANDS)
    }
    rr = Scene(bands=bands, fine_pixel_size=20.0, reference=observed, name=f"{scene.name}-{kind}-{shift}")
    truth = PairModel(fine=fine_k, coarse=coarse_k, offset=(-shift[0] / 2, -shift[1] / 2))
    return rr, truth


def estimate_rows(scenes: dict) -> list[dict]:
    from ssc_edge.registration import estimate_scene_registration

    rows = []
    for name, scene in scenes.items():
        for kind in KERNELS:
            for shift in SHIFTS:
                rr, truth = simulate(scene, kind, shift)
                start = time.perf_counter()
                est = estimate_scene_registration(rr)
                rows.append(
                    {
                        "scene": name,
                        "kernel": kind,
                        "truth_offset": list(truth.offset),
                        "offset": [round(v, 4) for v in est.offset],
                        "error": round(float(np.max(np.abs(np.subtract(est.offset, truth.offset)))), 4),
                        "estimated_kernel": est.kernel.describe(),
                        "true_kernel": truth.coarse[3].describe(),
                        "seconds": round(time.perf_counter() - start, 2),
                        "estimate": est.to_dict(),
                    }
                )
                print(
                    f"{name} {kind} d={truth.offset} est={est.offset[0]:+.3f},{est.offset[1]:+.3f} "
                    f"{est.kernel.describe()}",
                    flush=True,
                )
    return rows


def parse_case(text: str) -> tuple[str, str, tuple[int, int]]:
    """``"coastal:mtf-0.4:0,0"`` -> ``("coastal", "mtf-0.4", (0, 0))`` (the shift in source 10 m pixels)."""
    name, kind, shift = text.split(":")
    if name not in ("coastal", "real") or kind not in KERNELS:
        raise argparse.ArgumentTypeError(f"case {text!r}: scene must be coastal or real, kernel one of {KERNELS}")
    rows, cols = (int(v) for v in shift.split(","))
    return name, kind, (rows, cols)


def widened(pair, bias: float):
    """``pair`` with every Gaussian kernel's sigma raised by ``bias`` 10 m px (imresize kernels unchanged)."""
    from ssc_edge.wald import Kernel, PairModel

    def wide(kernel):
        return Kernel("gaussian", kernel.sigma + bias) if kernel.kind == "gaussian" else kernel

    return PairModel(fine=[wide(k) for k in pair.fine], coarse=[wide(k) for k in pair.coarse], offset=pair.offset)


def fit_rows(
    scenes: dict,
    epochs: int,
    seed: int,
    baseline: bool,
    done=None,
    cases=FIT_CASES,
    runs=("default", "truth"),
    bias: float = 0.1,
) -> list[dict]:
    from ssc_edge.train.fit import FitConfig, evaluate_fit, fit_model, pair_model_for, training_data

    rows = []
    for name, kind, shift in cases:
        rr, truth = simulate(scenes[name], kind, shift)
        row = {"scene": name, "kernel": kind, "shift_source_px": list(shift), "truth_offset": list(truth.offset)}
        base = FitConfig(epochs=epochs, seed=seed)
        fits = {"default": (base, pair_model_for(rr, base)), "truth": (base, truth)}
        fits["bicubic-none"] = (replace(base, degradation="bicubic", registration="none"), None)
        fits["widened"] = (base, widened(fits["default"][1], bias))
        chosen = [*runs, "bicubic-none"] if baseline and "bicubic-none" not in runs else list(runs)
        for label in chosen:
            config, pair = fits[label]
            inputs, target = training_data(rr, config, pair=pair)
            fit = fit_model(inputs, target, config)
            sre = evaluate_fit(rr, fit, pair=pair).model.mean_sre
            row[label] = round(sre, 3)
            if pair is not None:
                row[f"{label}_pair"] = pair.to_dict()
            print(f"{name} {kind} {shift} {label}: {sre:.2f} dB ({fit.seconds:.0f} s)", flush=True)
        if "default" in row and "truth" in row:
            row["default_minus_truth"] = round(row["default"] - row["truth"], 3)
        rows.append(row)
        if done is not None:  # write what is measured so far
            done(rows)
    return rows


#: Gaussian sigmas (source 10 m px) of ``--blur-sweep``: the MTF gains 0.6 ... 0.2 span 0.64 ... 1.14.
SWEEP_SIGMAS = tuple(round(0.6 + 0.05 * i, 2) for i in range(13))


def _scale_consistent(rr, sigma: float) -> float:
    """The pair sigma ``s`` whose degraded scene shows the RR scene's own estimated relative sigma (secant steps).

    The default pair uses the estimate itself, which assumes that Gaussian variances add exactly; this finds
    the ``s`` for which the estimator, run again on ``rr`` degraded by ``s``, returns ``sigma``.
    """
    from ssc_edge.registration import estimate_scene_registration
    from ssc_edge.wald import Kernel, PairModel, reduced_resolution_scene

    def gap(s: float) -> float:
        kernel = Kernel("gaussian", s)
        reduced = reduced_resolution_scene(rr, model=PairModel(fine=(kernel,) * 4, coarse=(kernel,) * 6))
        return estimate_scene_registration(reduced).kernel.sigma - sigma

    a, b = sigma, sigma + 0.05
    ga, gb = gap(a), gap(b)
    for _ in range(3):
        if gb == ga:  # flat: the estimate no longer moves with s
            break
        a, ga, b = b, gb, b - gb * (b - a) / (gb - ga)
        gb = gap(b)
    return b


def blur_rows(scenes: dict) -> list[dict]:
    """Estimated pooled sigma of RR scenes made with one Gaussian of known sigma (no offset), per source scene.

    A reference-free estimate measures the blur of the RR 20 m bands *relative to* the RR 10 m bands. With
    Gaussians (variances add), a source whose own bands stand at relative sigma ``s_src`` (10 m px) and a
    simulated kernel ``s_k`` give, in RR fine pixels, ``s_rr**2 = s_src**2 / 4 + 3 s_k**2 / 4``: equal to
    ``s_k`` only where ``s_src = s_k``. The rows record ``s_src`` (the estimate on the source itself), the
    estimate on each RR scene and that prediction, and the scale-consistent sigma of :func:`_scale_consistent`
    (a refinement that was tried and not adopted: RESULTS.md).
    """
    from ssc_edge.registration import estimate_scene_registration

    rows = []
    for name, scene in scenes.items():
        source = estimate_scene_registration(scene).kernel
        for sigma in SWEEP_SIGMAS:
            rr, _ = simulate(scene, f"gauss-{sigma}", (0, 0))
            est = estimate_scene_registration(rr).kernel
            row = {
                "scene": name,
                "source_sigma": round(source.sigma, 4),
                "sigma": sigma,
                "estimated_kind": est.kind,
                "estimated_sigma": round(est.sigma, 4),
                "predicted_sigma": round(float(np.sqrt(source.sigma**2 / 4 + 0.75 * sigma**2)), 4),
                "scale_consistent_sigma": round(_scale_consistent(rr, est.sigma), 4),
            }
            rows.append(row)
            print(row, flush=True)
    return rows


def pair_rows(scenes: dict) -> list[dict]:
    """Without fitting: how close each pair's inputs are to the told-the-truth pair's (SRE, dB, FIT_CASES)."""
    from ssc_edge.metrics import quality_report
    from ssc_edge.train.fit import FitConfig, pair_model_for
    from ssc_edge.wald import training_pair

    rows = []
    for name, kind, shift in FIT_CASES:
        rr, truth = simulate(scenes[name], kind, shift)
        reference = training_pair(rr, model=truth).inputs
        row = {"scene": name, "kernel": kind, "truth_offset": list(truth.offset)}
        for label, pair in (("default", pair_model_for(rr, FitConfig())), ("bicubic-none", None)):
            inputs = training_pair(rr, degradation="bicubic", model=pair).inputs
            for part, channels in (("fine", slice(6, 10)), ("coarse", slice(0, 6))):
                ref, got = reference[..., channels], inputs[..., channels]
                sre = quality_report(ref, got, band_names=[str(i) for i in range(ref.shape[-1])]).mean_sre
                row[f"{label}_{part}"] = "identical" if np.array_equal(ref, got) else round(sre, 2)
        rows.append(row)
        print(row, flush=True)
    return rows


def _markdown(result: dict) -> str:
    lines = [f"Command: `{result['command']}`", "", f"Machine: {result['machine']}", ""]
    if result.get("estimates"):
        lines += [
            "| scene | kernel | true offset (rows, cols) | estimated | error (px) | estimated kernel |",
            "|---|---|---|---|---:|---|",
        ]
        for r in result["estimates"]:
            t, e = r["truth_offset"], r["offset"]
            lines.append(
                f"| {r['scene']} | {r['kernel']} | {t[0]:+.1f}, {t[1]:+.1f} | {e[0]:+.3f}, {e[1]:+.3f} | "
                f"{r['error']:.3f} | {r['estimated_kernel']} |"
            )
        errors = [r["error"] for r in result["estimates"]]
        lines += ["", f"{len(errors)} cases: max error {max(errors):.3f} px, median {np.median(errors):.3f} px.", ""]
    if result.get("blur"):
        lines += [
            "Estimated pooled Gaussian sigma (10 m px of the source; RR fine px of the RR scene) against the",
            "simulated one; predicted: sqrt(source**2 / 4 + 3 sigma**2 / 4) from the source's own estimate:",
            "",
            "| scene | source's own sigma | simulated sigma | estimated | predicted | estimated - simulated | "
            "scale-consistent - simulated |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in result["blur"]:
            lines.append(
                f"| {r['scene']} | {r['source_sigma']:.3f} | {r['sigma']:.2f} | {r['estimated_sigma']:.3f} | "
                f"{r['predicted_sigma']:.3f} | {r['estimated_sigma'] - r['sigma']:+.3f} | "
                f"{r['scale_consistent_sigma'] - r['sigma']:+.3f} |"
            )
        lines.append("")
    if result.get("pairs"):
        lines += [
            "Training-pair inputs against the told-the-truth pair's (mean SRE, dB, of the degraded 10 m channels and",
            "of the degraded-and-upsampled 20 m channels; no fit):",
            "",
            "| scene | kernel | true offset | default 10 m | default 20 m | bicubic-none 10 m | bicubic-none 20 m |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        for r in result["pairs"]:
            t = r["truth_offset"]
            cells = " | ".join(str(r[f"{a}_{b}"]) for a in ("default", "bicubic-none") for b in ("fine", "coarse"))
            lines.append(f"| {r['scene']} | {r['kernel']} | {t[0]:+.1f}, {t[1]:+.1f} | {cells} |")
        lines.append("")
    nan = float("nan")
    if result.get("fits"):
        lines += [
            f"Fits: {result['epochs']} epochs, seed {result['seed']}; mean SRE (dB) on the RR reference.",
            "",
            "| scene | kernel | true offset | default (auto) | bicubic, no registration | told the truth | "
            "default - truth | widened (--sigma-bias) | widened - truth |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in result["fits"]:
            t = r["truth_offset"]
            lines.append(
                f"| {r['scene']} | {r['kernel']} | {t[0]:+.1f}, {t[1]:+.1f} | {r.get('default', nan):.2f} | "
                f"{r.get('bicubic-none', nan):.2f} | {r.get('truth', nan):.2f} | "
                f"{r.get('default_minus_truth', nan):+.2f} | {r.get('widened', nan):.2f} | "
                f"{r.get('widened', nan) - r.get('truth', nan):+.2f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimate", action="store_true", help="estimation accuracy over every kernel and offset")
    parser.add_argument("--fit", action="store_true", help="default vs told-the-truth fits on FIT_CASES")
    parser.add_argument("--pairs", action="store_true", help="pair inputs against the truth pair's, no fit")
    parser.add_argument(
        "--blur-sweep", action="store_true", help="estimated vs simulated Gaussian sigma, both scenes (cheap)"
    )
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline", action="store_true", help="also fit the earlier default (bicubic, none)")
    parser.add_argument(
        "--cases",
        nargs="+",
        type=parse_case,
        default=FIT_CASES,
        metavar="SCENE:KERNEL:SR,SC",
        help="fit these cases instead of FIT_CASES (shift in source 10 m px), e.g. coastal:mtf-0.4:0,0",
    )
    parser.add_argument(
        "--runs",
        nargs="+",
        default=["default", "truth"],
        choices=["default", "truth", "bicubic-none", "widened"],
        help="which fits per case (default: default and truth; bicubic-none = --baseline; widened: the default "
        "pair with its Gaussian sigma raised by --sigma-bias, an experiment)",
    )
    parser.add_argument("--sigma-bias", type=float, default=0.1, help="px added to the sigma of the widened run")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "faithful_pair")
    parser.add_argument("--note", default="", help="A line about the conditions (e.g. 'shared with other jobs').")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from ssc_edge.train.report import machine_info

    scenes = {"coastal": full_scene("coastal"), "real": full_scene("real")}
    machine = machine_info()
    result = {
        "command": "python benchmarks/faithful_pair.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{machine['cpu']}, {machine['cores']} cores. {args.note}".strip(),
        "epochs": args.epochs,
        "seed": args.seed,
    }
    if args.estimate:
        result["estimates"] = estimate_rows(scenes)
    args.out.mkdir(parents=True, exist_ok=True)

    def write(fits: list[dict] | None = None) -> None:
        if fits is not None:
            result["fits"] = fits
        (args.out / "faithful_pair.json").write_text(json.dumps(result, separators=(",", ":")) + "\n")
        (args.out / "faithful_pair.md").write_text(_markdown(result))

    if args.pairs:
        result["pairs"] = pair_rows(scenes)
    if args.blur_sweep:
        result["blur"] = blur_rows(scenes)
    if args.fit:
        fit_rows(
            scenes,
            args.epochs,
            args.seed,
            args.baseline,
            done=write,
            cases=args.cases,
            runs=args.runs,
            bias=args.sigma_bias,
        )
    write()
    print(_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
