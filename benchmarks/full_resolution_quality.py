"""Full-resolution (no-reference) indexes beside reduced-resolution scores, on every scene we have.

Usage::

    python benchmarks/full_resolution_quality.py                       # default fits at 100 epochs
    python benchmarks/full_resolution_quality.py --epochs 20 --out /tmp/frq   # quick check of the script

Scenes: the Reykjavik and Coastal RR files (their fine grid is 20 m), the full-resolution Coastal file and the
real L1C crop in ``../shared/data/real`` (JP2 band files). Products: Keys bicubic, the shipped demo model
(``models/demo.onnx``), a default ``fit-and-export`` on the scene (``--epochs``, default 100 rather than 200 on
this shared machine), and, on the RR files, the paper's SSC-CNN and ResNet outputs.

Full resolution: the indexes of :mod:`ssc_edge.quality` on the product at the scene's own scale, with the
scene's degradation (``bicubic``, MATLAB ``imresize``, for the paper's data; ``mtf`` for the real crop).
Reduced resolution: mean SRE (dB) and SAM (deg) against a reference: the RR file's ``Xm_im``; for the two
full-resolution scenes the product is made from ``wald.reduced_resolution_scene`` (same degradation) and scored
against the observed 20 m bands. The default fit's reduced-resolution score is its report's (the reference is
never seen in training; on a full scene a second model is trained two scales down). Agreement with the
reduced-resolution ranking: Kendall's tau between each index and the RR mean SRE over the products of a scene.
Writes ``full_resolution_quality.{json,md}`` with the machine and the command.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CROP = DATA / "real" / "l1c_T31TDH_20150726_crop"
#: name -> (file, degradation of the scene, paper output suffix or None)
SCENES = {
    "reykjavik-RR": ("reykjavik_cell_RR.mat", "bicubic", "r"),
    "coastal-RR": ("coastalA_cell_RR.mat", "bicubic", "c"),
    "coastal-full": ("CoastalA_cell.mat", "bicubic", None),
    "real-L1C-crop": (None, "mtf", None),
}
INDEXES = {  # name -> True when higher is better
    "consistency_mean_sre": True,
    "consistency_q2n": True,
    "d_lambda_khan": False,
    "d_lambda": False,
    "d_s": False,
    "qnr": True,
    "hqnr": True,
    "d_rho": False,
}


def _read_crop():
    """The real L1C crop's JP2 band files as a Scene (baseline 02.04: DN = reflectance x 10000, no offset)."""
    import rasterio

    from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
    from ssc_edge.scene import Scene

    bands = {}
    for band in FINE_BANDS + COARSE_BANDS:
        (path,) = CROP.glob(f"*_{band}.jp2")
        with rasterio.open(path) as dataset:
            bands[band] = dataset.read(1).astype(np.float32)
    return Scene(bands=bands, fine_pixel_size=10.0, source=CROP, name="T31TDH_20150726_crop")


def _scene(name: str):
    from ssc_edge.io import read_scene

    file = SCENES[name][0]
    return _read_crop() if file is None else read_scene(DATA / file)


def _rr_score(product, reference) -> dict:
    from ssc_edge.metrics import signal_to_reconstruction_error, spectral_angle_mapper

    return {
        "rr_mean_sre": float(np.mean(signal_to_reconstruction_error(reference, product))),
        "rr_sam": spectral_angle_mapper(reference, product),
    }


def _rows_for(name: str, epochs: int, workdir: Path) -> list[dict]:
    from ssc_edge import wald
    from ssc_edge.evaluation import bicubic_baseline
    from ssc_edge.io import read_estimate
    from ssc_edge.quality import full_resolution_quality
    from ssc_edge.runtime import Sharpener
    from ssc_edge.train import FitConfig, fit_and_export

    scene = _scene(name)
    degradation, paper = SCENES[name][1], SCENES[name][2]
    rr_scene = scene if scene.reference is not None else wald.reduced_resolution_scene(scene, degradation=degradation)
    demo = Sharpener(REPO / "models" / "demo.onnx", provider="cpu")
    tick = time.perf_counter()
    fit = fit_and_export(scene, workdir / f"{name}.onnx", FitConfig(epochs=epochs), force=True, write_keras=False)
    fit_seconds = time.perf_counter() - tick
    fitted = Sharpener(fit.paths["onnx"], provider="cpu")
    products = {
        "bicubic": (bicubic_baseline(scene), _rr_score(bicubic_baseline(rr_scene), rr_scene.reference)),
        "demo model": (demo.sharpen(scene), _rr_score(demo.sharpen(rr_scene), rr_scene.reference)),
        f"default fit ({epochs} epochs)": (
            fitted.sharpen(scene),
            {
                "rr_mean_sre": float(fit.evaluation.model.mean_sre),
                "rr_sam": float(fit.evaluation.model.sam),
                "rr_kind": fit.evaluation.kind,
            },
        ),
    }
    if paper is not None:
        for label, stem in (("paper SSC-CNN", "skipnet"), ("paper ResNet", "resnet")):
            output = read_estimate(DATA / "paper_outputs" / f"{stem}panshapen_{paper}.mat")
            products[label] = (output, _rr_score(output, scene.reference))
    rows = []
    for product, (image, rr) in products.items():
        quality = full_resolution_quality(image, scene.fine(), scene.coarse(), degradation=degradation)
        rows.append({"scene": name, "product": product, "shape": list(scene.shape), "degradation": degradation,
                     **rr, "full_resolution": quality.to_dict()})  # fmt: skip
        print(json.dumps({"scene": name, "product": product, **rr, "summary": quality.summary()}), flush=True)
    rows[2]["fit_seconds"] = round(fit_seconds, 1)
    return rows


def agreement(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Kendall's tau per scene between each index (oriented so that larger = better) and the RR mean SRE."""
    from scipy.stats import kendalltau

    table: dict[str, dict[str, float]] = {}
    for scene in dict.fromkeys(r["scene"] for r in rows):
        group = [r for r in rows if r["scene"] == scene]
        rr = [r["rr_mean_sre"] for r in group]
        table[scene] = {}
        for index, higher in INDEXES.items():
            values = [r["full_resolution"][index] for r in group]
            values = [float(v) if v != "inf" else np.inf for v in values]
            tau = kendalltau(rr, values if higher else [-v for v in values]).statistic
            table[scene][index] = round(float(tau), 3)
    return table


def markdown(result: dict) -> str:
    lines = [
        "| scene | product | RR mean SRE (dB) | RR SAM (deg) | cons. SRE (dB) | cons. Q2n | D_lambda(K) | D_lambda "
        "| D_s | QNR | HQNR | D_rho |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        f = r["full_resolution"]
        lines.append(
            f"| {r['scene']} | {r['product']} | {r['rr_mean_sre']:.2f} | {r['rr_sam']:.3f} | "
            f"{f['consistency_mean_sre']:.2f} | {f['consistency_q2n']:.4f} | {f['d_lambda_khan']:.4f} | "
            f"{f['d_lambda']:.4f} | {f['d_s']:.4f} | {f['qnr']:.4f} | {f['hqnr']:.4f} | {f['d_rho']:.4f} |"
        )
    lines += ["", "Kendall's tau with the RR mean SRE ranking (1 = same order, -1 = reversed):", ""]
    lines.append("| scene | " + " | ".join(INDEXES) + " |")
    lines.append("|---|" + "---:|" * len(INDEXES))
    for scene, taus in result["agreement"].items():
        lines.append(f"| {scene} | " + " | ".join(f"{taus[i]:.2f}" for i in INDEXES) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES))
    parser.add_argument("--epochs", type=int, default=100, help="Epochs of the default fit (200 is the default).")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "full_resolution_quality")
    args = parser.parse_args(argv)
    from ssc_edge.train.report import machine_info

    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.scenes:
            rows += _rows_for(name, args.epochs, Path(workdir))
    result = {
        "command": "python benchmarks/full_resolution_quality.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine_info(),
        "epochs": args.epochs,
        "rows": rows,
        "agreement": agreement(rows),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "full_resolution_quality.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "full_resolution_quality.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
