"""The band registration estimate on a scene with a no-data wedge, counted (before issue 31.3) and left out.

Usage::

    python benchmarks/registration_nodata.py [--out benchmarks/results]

The real L1C crop (300 x 300 px) is cut by a 0 DN wedge in every band (each band on its own grid) over
``share`` of it, at each of its four corners, as an orbit edge cuts a tile. For each case it gives the
scene's estimated offset of the 20 m grid (rows, cols, 10 m px), the pooled Gaussian sigma (10 m px) and the
20 m pixels regressed:

- ``clean``: the crop without the wedge;
- ``counted``: the wedge's 0 DN regressed as if it were data, as :func:`ssc_edge.registration.estimate_registration`
  did before (emulated: the wedge holds 1e-6 DN, which the no-data rule does not catch);
- ``left out``: the estimate now (a 20 m pixel enters only when it and its 10 x 10 neighbourhood are valid).

With ``--gate-model M.onnx`` it also measures the precision gate (``mean SRE(fp32) - mean SRE(bf16)`` on the
Wald pair one scale down, :mod:`ssc_edge.runtime.precision`) on the clean crop, on the 18 % top-left wedge
with the pair's no-data rim counted (before issue 31.3: the degradation's blends of 0 DN and the scene
scored) and left out (now: :func:`ssc_edge.nodata.nodata_where_read`). Needs bf16 on ``--provider``.

Writes ``registration_nodata.{json,md}`` with the machine and the command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CROP = REPO.parent / "shared" / "data" / "real" / "l1c_T31TDH_20150726_crop"


def _wedge(shape: tuple[int, int], share: float, corner: tuple[bool, bool]) -> np.ndarray:
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    r, c = (rows + 0.5) / shape[0], (cols + 0.5) / shape[1]
    r, c = (1 - r if corner[0] else r), (1 - c if corner[1] else c)
    return r + c < np.sqrt(2 * share)


def _row(name: str, estimate) -> dict:
    return {
        "case": name,
        "offset": [round(v, 4) for v in estimate.offset],
        "sigma": round(estimate.kernel.sigma, 4),
        "kernel": estimate.kernel.kind,
        "samples": estimate.samples,
    }


def run(shares: list[float]) -> list[dict]:
    import rasterio

    from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
    from ssc_edge.registration import estimate_scene_registration
    from ssc_edge.scene import Scene

    bands = {}
    for band in FINE_BANDS + COARSE_BANDS:
        with rasterio.open(CROP / f"T31TDH_20150726T105026_{band}.jp2") as src:
            bands[band] = src.read(1).astype(np.float64)
    rows = [_row("clean", estimate_scene_registration(Scene(bands=bands)))]
    for share in shares:
        for corner in ((False, False), (False, True), (True, False), (True, True)):
            where = f"{share:.0%} wedge, {'bottom' if corner[0] else 'top'}-{'right' if corner[1] else 'left'}"
            for mode, fill in (("counted", 1e-6), ("left out", 0.0)):
                cut = {b: np.where(_wedge(v.shape, share, corner), fill, v) for b, v in bands.items()}
                rows.append(_row(f"{where}, {mode}", estimate_scene_registration(Scene(bands=cut))))
    return rows


def gate(model: Path, provider: str) -> dict[str, float]:
    """The bf16 gate loss, dB, on the clean crop and the wedged one with the rim counted and left out."""
    import rasterio

    from ssc_edge import wald
    from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
    from ssc_edge.runtime import Sharpener
    from ssc_edge.runtime.precision import gate_loss, wald_gate_pair
    from ssc_edge.scene import Scene

    bands = {}
    for band in FINE_BANDS + COARSE_BANDS:
        with rasterio.open(CROP / f"T31TDH_20150726T105026_{band}.jp2") as src:
            bands[band] = src.read(1).astype(np.float32)
    wedged = {b: np.where(_wedge(v.shape, 0.18, (False, False)), np.float32(0), v) for b, v in bands.items()}
    fp32 = Sharpener(model, provider="cpu", precision="fp32")
    bf16 = Sharpener(model, provider=provider, precision="bf16")
    kept = wald.nodata_where_read
    losses = {}
    for name, scene, rim in (
        ("clean", bands, kept),
        ("counted", wedged, lambda d, o, **_: d),
        ("left out", wedged, kept),
    ):
        wald.nodata_where_read = rim  # the rim counted: the pair as it was made before
        pair, reference = wald_gate_pair(Scene(bands=scene, name=name), fp32.contract)
        losses[name] = round(gate_loss(fp32.sharpen, bf16.sharpen, pair, reference), 4)
    wald.nodata_where_read = kept
    return losses


def _markdown(rows: list[dict], machine: dict, command: str) -> str:
    clean = rows[0]
    lines = [
        "# Registration estimate with a no-data wedge (real L1C crop, 300 x 300 px)",
        "",
        f"`{command}` on {machine['cpu']}.",
        "",
        "| case | offset rows, cols (10 m px) | sigma (10 m px) | d offset vs clean | d sigma | 20 m px |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        d_off = max(abs(a - b) for a, b in zip(r["offset"], clean["offset"], strict=True))
        lines.append(
            f"| {r['case']} | {r['offset'][0]:+.3f}, {r['offset'][1]:+.3f} | {r['sigma']:.3f} | {d_off:.3f} | "
            f"{r['sigma'] - clean['sigma']:+.3f} | {r['samples']} |"
        )
    return "\n".join(lines) + "\n"


def _gate_markdown(losses: dict[str, float], model: str) -> str:
    return (
        f"\nPrecision gate (bf16 loss on the Wald pair, dB) of `{model}`: clean crop {losses['clean']:.4f}; "
        f"18 % top-left wedge, rim counted {losses['counted']:.4f}, left out {losses['left out']:.4f}.\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--share", type=float, action="append", help="wedge share of the crop (repeatable)")
    parser.add_argument("--gate-model", type=Path, help="also measure the bf16 gate of this model")
    parser.add_argument("--provider", default="openvino", help="provider of the bf16 run (default openvino)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from ssc_edge.train.report import machine_info

    machine = machine_info()
    rows = run(args.share or [0.18, 0.35])
    losses = gate(args.gate_model, args.provider) if args.gate_model else None
    command = "python benchmarks/registration_nodata.py " + " ".join(sys.argv[1:] if argv is None else argv)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "registration_nodata.json").write_text(
        json.dumps({"command": command.strip(), "machine": machine, "rows": rows, "gate_db": losses}, indent=2) + "\n"
    )
    text = _markdown(rows, machine, command.strip())
    if losses is not None:
        text += _gate_markdown(losses, str(args.gate_model))
    (args.out / "registration_nodata.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
