"""Valid pixels next to a no-data edge: zeros fed to the network (before issue 25.1) against the nearest-valid fill.

Usage::

    python benchmarks/nodata_edge.py --model M.onnx [--scene SCENE] [--out benchmarks/results]

A real scene (default: the real L1C crop, 300 x 300 px) is sharpened three times with one model on the CPU:

- ``clean``: the scene as it is (no no-data);
- ``before``: a no-data region cut into it (0 DN in every band on its own grid) and the zeros fed to the
  network, as ssc-edge did before no-data was handled (every pixel declared valid, so nothing is filled);
- ``after``: the same region with the nearest-valid fill of :mod:`ssc_edge.nodata` (no-data output is NaN).

For each of two geometries (``wedge``: the corner beyond a slanted line, as an orbit edge cuts a tile;
``border``: the first columns, as a reprojected scene's edge) it reports, for the valid 10 m pixels at
distance 0, 1, ..., 8 and more than 8 px from the nearest no-data 10 m pixel (distance = ceil(Euclidean
distance) - 1: 0 is an edge neighbour), the max and mean |difference| from ``clean`` over the six sharpened
bands, DN; and the Wald consistency index (mean SRE of ``degrade(output)`` against the observed 20 m bands,
dB, the model's own degradation) of each run on one set of coarse pixels: those whose degradation of the
``after`` output is defined (its kernel sees no no-data) and whose observed 20 m pixels are valid. The
same index is also given on those of the pixels within 8 px (20 m) of the edge. The ``as scored before``
line is what the quality lines computed before: ``before`` against the holed scene's
20 m bands, every pixel, no-data included; ``quality line`` is the consistency of ``infer``'s no-reference
line now (:func:`ssc_edge.quality.full_resolution_quality`, which leaves no-data out).

Writes ``nodata_edge.{json,md}`` with the machine and the command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DISTANCES = 9  # 0..8, then "9+"
NEAR = 8  # 20 m pixels from the no-data edge counted as "near the edge" in the consistency lines


def _holed(scene, inside):
    """``scene`` with 0 DN wherever ``inside(rows, cols)`` (10 m pixel centres) holds, on each band's grid."""
    from ssc_edge.scene import Scene

    bands = {}
    for band, values in scene.bands.items():
        ratio = scene.shape[0] / values.shape[0]
        rows, cols = np.mgrid[: values.shape[0], : values.shape[1]]
        bands[band] = np.where(inside((rows + 0.5) * ratio, (cols + 0.5) * ratio), np.float32(0), values)
    return Scene(bands=bands, name=f"{scene.name}-holed", georef=scene.georef)


GEOMETRIES = {
    "wedge": lambda h, w: lambda r, c: r + 0.8 * c < 0.45 * (h + w),
    "border": lambda h, w: lambda r, c: c < 0.2 * w,
}


def _run(sharpener, scene, *, zeros_fed: bool) -> np.ndarray:
    out = np.empty((*scene.shape, sharpener.contract.channels_out), np.float32)

    def read(band, tile):
        return scene.bands[band][tile.slices]

    def write(core, values):
        out[core.slices] = values

    everything = (lambda band, tile: np.ones(tile.shape, bool)) if zeros_fed else None
    sharpener.sharpen_windows(scene.shape, read, write, read_valid=everything)
    return out


def _by_distance(diff: np.ndarray, distance: np.ndarray, valid: np.ndarray) -> list[dict]:
    rows = []
    for d in range(DISTANCES + 1):
        where = valid & ((distance == d) if d < DISTANCES else (distance >= d))
        values = diff[where]
        rows.append({
            "distance": str(d) if d < DISTANCES else f"{DISTANCES}+",
            "pixels": int(where.sum()),
            "max_dn": float(values.max()) if values.size else None,
            "mean_dn": float(values.mean()) if values.size else None,
        })  # fmt: skip
    return rows


def measure(model: Path, scene_path: Path, *, tile: int, threads: int) -> dict:
    from ssc_edge.io import read_scene
    from ssc_edge.metrics import signal_to_reconstruction_error
    from ssc_edge.nodata import scene_valid
    from ssc_edge.quality import degradation_function, full_resolution_quality, model_degradation
    from ssc_edge.runtime import Sharpener

    scene = read_scene(scene_path)
    sharpener = Sharpener(model, provider="cpu", tile=tile, threads=threads)
    contract = sharpener.contract
    degradation = model_degradation(contract.training, contract.registration)
    degrade = degradation_function(degradation)
    started = time.perf_counter()
    clean = _run(sharpener, scene, zeros_fed=False)

    def quality_line(image, holed):  # what infer's no-reference line reports (every strip scored)
        result = full_resolution_quality(image, holed.fine(), holed.coarse(), degradation=degradation)
        return result.consistency_mean_sre

    clean_line = quality_line(clean, scene)
    cases = {}
    for name, geometry in GEOMETRIES.items():
        holed = _holed(scene, geometry(*scene.shape))
        valid = scene_valid(holed)
        distance = np.ceil(ndimage.distance_transform_edt(valid)).astype(int) - 1
        before, after = _run(sharpener, holed, zeros_fed=True), _run(sharpener, holed, zeros_fed=False)
        assert np.array_equal(np.isnan(after).any(axis=-1), ~valid), "no-data output must be NaN exactly there"
        coarse_valid = np.all(holed.coarse() != 0, axis=-1)
        scored = np.isfinite(degrade(after)).all(axis=-1) & coarse_valid

        def consistency(image, observed, mask):
            return float(np.mean(signal_to_reconstruction_error(observed, degrade(image), valid=mask)))

        near = scored & (ndimage.distance_transform_edt(coarse_valid) <= NEAR)  # 20 m pixels near the edge
        cases[name] = {
            "nodata_share": float(1 - valid.mean()),
            "before": _by_distance(np.abs(before - clean).max(axis=-1), distance, valid),
            "after": _by_distance(np.abs(after - clean).max(axis=-1), distance, valid),
            "consistency_db": {
                "scored_coarse_pixels": int(scored.sum()),
                "clean": consistency(clean, scene.coarse(), scored),
                "before": consistency(before, scene.coarse(), scored),
                "after": consistency(after, scene.coarse(), scored),
                "near_edge_coarse_pixels": int(near.sum()),
                "clean_near_edge": consistency(clean, scene.coarse(), near),
                "before_near_edge": consistency(before, scene.coarse(), near),
                "after_near_edge": consistency(after, scene.coarse(), near),
                "clean_whole_scene": consistency(clean, scene.coarse(), None),
                "before_as_scored_before": consistency(before, holed.coarse(), np.ones(scored.shape, bool)),
                "quality_line_clean": clean_line,
                "quality_line_after": quality_line(after, holed),
            },
        }
    return {
        "scene": str(scene_path.relative_to(DATA.parent) if scene_path.is_relative_to(DATA.parent) else scene_path),
        "shape": list(scene.shape),
        "model": str(model),
        "halo": contract.halo,
        "tile": tile,
        "threads": threads,
        "seconds": time.perf_counter() - started,
        "cases": cases,
    }


def _markdown(result: dict, machine: dict, command: str) -> str:
    lines = [
        "# No-data edges: zeros fed to the network (before) and the nearest-valid fill (after)",
        "",
        f"Scene `{result['scene']}` ({result['shape'][0]} x {result['shape'][1]} px), model `{result['model']}` "
        f"(halo {result['halo']} px), CPU provider, tile {result['tile']}, {result['threads']} threads. "
        f"Machine: {machine['cpu']}, {machine['logical_cores']} logical cores.",
        "",
        f"Command: `{command}`",
        "",
        "|difference| from the same scene without no-data, DN, the max over the six sharpened bands per pixel; "
        "valid 10 m pixels by distance from the nearest no-data 10 m pixel (0: an edge neighbour).",
    ]
    for name, case in result["cases"].items():
        lines += [
            "",
            f"## {name} ({100 * case['nodata_share']:.1f} % no-data)",
            "",
            "| distance (px) | pixels | before: max | before: mean | after: max | after: mean |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for b, a in zip(case["before"], case["after"], strict=True):
            lines.append(
                f"| {b['distance']} | {b['pixels']} | {b['max_dn']:.1f} | {b['mean_dn']:.2f} | "
                f"{a['max_dn']:.1f} | {a['mean_dn']:.2f} |"
            )
        c = case["consistency_db"]
        lines += [
            "",
            f"Consistency (mean SRE of the degraded output against the observed 20 m bands, dB) on the same "
            f"{c['scored_coarse_pixels']} valid 20 m pixels: clean {c['clean']:.2f}, before {c['before']:.2f}, "
            f"after {c['after']:.2f}; on the {c['near_edge_coarse_pixels']} of them within {NEAR} px of the edge: "
            f"clean {c['clean_near_edge']:.2f}, before {c['before_near_edge']:.2f}, after {c['after_near_edge']:.2f}. "
            f"Clean scene, every pixel: {c['clean_whole_scene']:.2f}; the before run as the quality lines scored it "
            f"(no-data included): {c['before_as_scored_before']:.2f}. The no-reference line of `infer` "
            f"(`full_resolution_quality`, no-data left out): clean {c['quality_line_clean']:.2f}, "
            f"after {c['quality_line_after']:.2f}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--scene", type=Path, default=DATA / "real" / "l1c_T31TDH_20150726_crop")
    parser.add_argument("--tile", type=int, default=128, help="window side (tiled: the fill is cut with it)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--name", default="nodata_edge")
    args = parser.parse_args(argv)
    from ssc_edge.runtime.bench import machine_info

    result = measure(args.model, args.scene, tile=args.tile, threads=args.threads)
    machine = machine_info()
    command = "python benchmarks/nodata_edge.py " + " ".join(sys.argv[1:] if argv is None else argv)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(
        json.dumps({"command": command, "machine": machine, **result}, indent=2) + "\n"
    )
    (args.out / f"{args.name}.md").write_text(_markdown(result, machine, command))
    print((args.out / f"{args.name}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
