"""Registration and relative blur of the 60 m bands (B01, B09): accuracy on simulated bands, stability on real ones.

Usage::

    python benchmarks/sixty_registration.py            # a few seconds; writes sixty_registration.{json,md}

Two tables:

- **simulated**: on the full Coastal scene and the real L1C crop, two 60 m bands made with a known kernel
  (the nominal B01 MTF Gaussian at ratio 6, a wider Gaussian, ``imresize``) and a known offset of their grid
  (``wald.decimate`` centres 60 m pixel ``i`` at ``6 i + 2.5 + d``), from real texture that is not the
  predictors': "B01" from B03 (regressed on B02), "B09" from B8A brought to 10 m (regressed on B08). Error =
  the larger of |rows|, |cols| error of the scene offset, 10 m px.
- **real**: :func:`ssc_edge.registration.estimate_registration` at ratio 6 on each real scene's observed
  B01/B09, whole and on its four quadrants (how stable the estimate is on a few hundred 60 m pixels).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SCENES = {"coastal": DATA / "CoastalA_cell.mat", "l1c": DATA / "real" / "l1c_T31TDH_20150726_crop"}
SHIFTS = ((0.0, 0.0), (1.5, -1.0), (-3.0, 0.5), (0.5, 2.0))


def simulated_rows(scenes: dict) -> list[dict]:
    from ssc_edge.registration import estimate_registration
    from ssc_edge.wald import Kernel, decimate, mtf_sigma, upsample

    kernels = {
        "mtf-B01": Kernel("gaussian", mtf_sigma(0.32, ratio=6)),
        "gaussian-4.0": Kernel("gaussian", 4.0),
        "imresize": Kernel("bicubic"),
    }
    rows = []
    for name, scene in scenes.items():
        size = min(scene.shape) // 6 * 6
        fine = scene.fine()[:size, :size]
        b8a = upsample(scene.bands["B8A"][: size // 2, : size // 2].astype(np.float64), ratio=2)
        b03 = scene.bands["B03"][:size, :size].astype(np.float64)
        for label, kernel in kernels.items():
            for shift in SHIFTS:
                coarse = np.stack([decimate(b, kernel, ratio=6, shift=shift) for b in (b03, b8a)], axis=-1)
                est = estimate_registration(fine, coarse, ratio=6)
                rows.append(
                    {
                        "scene": name,
                        "kernel": label,
                        "truth": list(shift),
                        "offset": [round(v, 3) for v in est.offset],
                        "error": round(float(np.max(np.abs(np.subtract(est.offset, shift)))), 3),
                        "estimated_kernel": est.kernel.describe(),
                    }
                )
    return rows


def real_rows(scenes: dict) -> list[dict]:
    from ssc_edge.bands import VERY_COARSE_BANDS
    from ssc_edge.registration import estimate_registration

    rows = []
    for name, scene in scenes.items():
        size = min(scene.shape) // 12 * 12
        half = size // 2
        corners = {"TL": (0, 0), "TR": (0, half), "BL": (half, 0), "BR": (half, half)}
        parts = {"whole": (0, 0, size)} | {q: (r, c, half) for q, (r, c) in corners.items()}
        for part, (r, c, n) in parts.items():
            fine = scene.fine()[r : r + n, c : c + n]
            window = (slice(r // 6, (r + n) // 6), slice(c // 6, (c + n) // 6))
            sixty = np.stack([scene.bands[b][window] for b in VERY_COARSE_BANDS], -1)
            est = estimate_registration(fine, sixty, ratio=6)
            rows.append(
                {
                    "scene": name,
                    "part": part,
                    "offset": [round(v, 3) for v in est.offset],
                    "kernel": est.kernel.describe(),
                    "bands": {b.band: [[round(v, 2) for v in b.offset], b.kernel.describe()] for b in est.bands},
                    "samples": est.samples,
                }
            )
    return rows


def _markdown(result: dict) -> str:
    lines = [f"`{result['command']}`", "", f"Machine: {result['machine']}", "", "Simulated 60 m bands:", ""]
    lines += ["| scene | kernel | true offset | estimated offset | error (px) | estimated kernel |"]
    lines += ["|---|---|---|---|---:|---|"]
    for r in result["simulated"]:
        t, o = r["truth"], r["offset"]
        lines.append(
            f"| {r['scene']} | {r['kernel']} | {t[0]:+.1f}, {t[1]:+.1f} | {o[0]:+.2f}, {o[1]:+.2f} | "
            f"{r['error']:.3f} | {r['estimated_kernel']} |"
        )
    lines += ["", "Real 60 m bands, whole scene and quadrants:", ""]
    lines += ["| scene | part | offset (rows, cols) | kernel | B01 | B09 | 60 m px |"]
    lines += ["|---|---|---|---|---|---|---:|"]
    for r in result["real"]:
        o = r["offset"]
        bands = [f"{v[0][0]:+.2f}, {v[0][1]:+.2f}; {v[1]}" for v in r["bands"].values()]
        lines.append(
            f"| {r['scene']} | {r['part']} | {o[0]:+.2f}, {o[1]:+.2f} | {r['kernel']} | {bands[0]} | {bands[1]} | "
            f"{r['samples']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "sixty_registration")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from ssc_edge.io import read_scene
    from ssc_edge.train.report import machine_info

    scenes = {name: read_scene(path) for name, path in SCENES.items()}
    machine = machine_info()
    result = {
        "command": "python benchmarks/sixty_registration.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{machine['cpu']}, {machine['cores']} cores",
        "simulated": simulated_rows(scenes),
        "real": real_rows(scenes),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sixty_registration.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "sixty_registration.md").write_text(_markdown(result))
    print(_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
