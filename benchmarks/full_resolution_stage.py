"""The full-resolution stage on simulated truth: 24 RR scenes of 3 textures whose 10 m truth is known.

Usage::

    python benchmarks/full_resolution_stage.py                        # every case, runs today / default / truth
    python benchmarks/full_resolution_stage.py --cases real:mtf-nominal:0,0 --runs today default
    python benchmarks/full_resolution_stage.py --runs default --label epochs60 --fit-args epochs=60

Each case is an RR scene simulated from a full-resolution source with a known kernel and offset
(``faithful_pair.simulate``: the 10 m and 20 m bands degraded by 2, the source's 20 m bands as the
reference on the RR 10 m grid). Textures: the real L1C crop (``real``), the full Coastal cell
(``coastal``) and Reykjavik (``reykjavik``: its RR file's 20 m-GSD "10 m" cells as the 10 m bands and its
``Xm_im`` as the truth, the 20 m bands simulated from ``Xm_im``; no shift, the file's own offset of -0.5 px,
and the 10 m bands keep the ``imresize`` blur they were made with, so every Reykjavik case mixes two kernels).

Runs per case, all scored by mean SRE (dB) against the RR reference, which no run sees:

- ``today``: the default of the previous release (200 epochs, estimated pair, no full-resolution stage);
- ``default``: :class:`ssc_edge.train.fit.FitConfig` as it is now (``--fit-args`` changes fields), i.e.
  with the full-resolution stage when the default has it; the SRE before the stage is recorded too;
- ``truth``: 200 epochs on the pair built with the simulation's own kernels and offset ("told the truth").

Writes ``full_resolution_stage.{json,md}`` under ``--out`` with the machine and the exact command.
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

import faithful_pair as fp  # noqa: E402

DATA = fp.DATA
#: (texture, kernel, (s_rows, s_cols)): 24 cases, kernels from imresize to wider than the nominal MTF, offsets
#: of 0 to 1.1 RR px (Reykjavik: mtf-0.3, 0.4 and 0.6 are further cases this list leaves out for time: each
#: Reykjavik case costs two 200-epoch fits of 225 patches besides the default). The Coastal and L1C cases are
#: those of the 200-epoch runs of faithful_pair.py (seed 0), so their ``today`` and ``truth`` can be taken from
#: those results (``--stored``).
CASES = (
    *(("coastal", k, s) for k, s in (
        ("imresize", (0, 0)), ("imresize", (1, 1)), ("imresize", (2, -2)), ("mtf-nominal", (0, 0)),
        ("mtf-0.2", (-2, 0)), ("mtf-0.3", (-1, -2)), ("mtf-0.4", (0, 0)), ("mtf-0.5", (0, -1)), ("mtf-0.6", (2, 1)),
    )),
    *(("real", k, s) for k, s in (
        ("imresize", (-1, 1)), ("mtf-nominal", (2, -1)), ("mtf-0.2", (1, 0)), ("mtf-0.3", (-2, 2)),
        ("mtf-0.4", (0, 0)), ("mtf-0.4", (-1, 0)), ("mtf-0.4", (2, 1)), ("mtf-0.5", (0, -1)), ("mtf-0.6", (-1, -2)),
    )),
    ("real", "mtf-0.4", (1, 0)), ("coastal", "imresize", (-1, 0)), ("coastal", "imresize", (0, 1)),
    *(("reykjavik", k, (0, 0)) for k in ("imresize", "mtf-nominal", "mtf-0.2")),
)  # fmt: skip
#: The faithful_pair.py results whose 200-epoch, seed-0 ``default`` and ``truth`` are this script's ``today``
#: and ``truth`` (the same code path: fit_model on the whole pair equals fit_sampled on a scene under the budget).
STORED = tuple(
    REPO / "benchmarks" / "results" / f"faithful_pair_fit200_{name}" / "faithful_pair.json"
    for name in ("seed0", "kernels", "offsets", "extra")
)


def stored_runs(paths=STORED) -> dict:
    """{(texture, kernel, shift): {"today": dB, "truth": dB, "stored_in": file}} of earlier 200-epoch seed-0 fits."""
    found = {}
    for path in paths:
        data = json.loads(path.read_text())
        if data.get("seed") != 0 or data.get("epochs") != 200:
            continue
        for row in data.get("fits", []):
            if "default" in row and "truth" in row:
                key = (row["scene"], row["kernel"], tuple(row["shift_source_px"]))
                found[key] = {"today": row["default"], "truth": row["truth"], "stored_in": path.parent.name}
    return found


def reykjavik_case(kind: str):
    """The Reykjavik RR file as a truth: its "10 m" cells as 10 m bands, ``Xm_im`` degraded by ``kind`` as 20 m."""
    from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
    from ssc_edge.io import read_scene
    from ssc_edge.scene import Scene
    from ssc_edge.wald import PairModel, decimate

    source = read_scene(DATA / "reykjavik_cell_RR.mat")
    reference = np.asarray(source.reference, np.float64)
    fine_k = PairModel.nominal("bicubic").fine  # how the RR file's 10 m cells were made (MATLAB imresize)
    _, coarse_k = fp.kernels(kind)
    coarse = decimate(reference, coarse_k)
    fine = source.fine()
    bands = {b: fine[..., i] for i, b in enumerate(FINE_BANDS)} | {
        b: coarse[..., i] for i, b in enumerate(COARSE_BANDS)
    }
    rr = Scene(bands=bands, fine_pixel_size=20.0, reference=reference, name=f"reykjavik-{kind}")
    # The RR file's 20 m data sit half an RR pixel before the 2i + 0.5 convention (a free-kernel regression of
    # coarse B8A on fine B08 centres on 2i; the estimate finds -0.49 px in every case): the truth's offset.
    return rr, PairModel(fine=fine_k, coarse=coarse_k, offset=(-0.5, -0.5))


def simulate(texture: str, kind: str, shift: tuple[int, int], sources: dict):
    """(RR scene, true PairModel) of one case."""
    if texture == "reykjavik":
        return reykjavik_case(kind)
    if texture not in sources:
        sources[texture] = fp.full_scene(texture)
    return fp.simulate(sources[texture], kind, shift)


def parse_case(text: str) -> tuple[str, str, tuple[int, int]]:
    """``"real:mtf-0.4:0,0"`` -> ``("real", "mtf-0.4", (0, 0))``."""
    texture, kind, shift = text.split(":")
    if texture not in ("real", "coastal", "reykjavik") or kind not in fp.KERNELS:
        raise argparse.ArgumentTypeError(f"case {text!r}: texture real|coastal|reykjavik, kernel one of {fp.KERNELS}")
    rows, cols = (int(v) for v in shift.split(","))
    return texture, kind, (rows, cols)


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text, text)


def run_case(rr, truth, label: str, config) -> dict:
    """Fit ``rr`` as ``label`` says and score it on the reference; returns the row's fields for this run."""
    from ssc_edge.train.fit import evaluate_fit, fit_scene, pair_model_for

    pair = truth if label == "truth" else pair_model_for(rr, config)
    start = time.perf_counter()
    fit = fit_scene(rr, config, pair=pair, keep_before_stage=True)
    seconds = time.perf_counter() - start
    out = {label: round(evaluate_fit(rr, fit, pair=pair).model.mean_sre, 3), f"{label}_seconds": round(seconds, 1)}
    if fit.stage is not None:
        out[f"{label}_stage"] = {k: fit.stage[k] for k in ("kernel", "kept", "one_scale_down_sre", "seconds")}
    if fit.before_stage is not None:
        out[f"{label}_before_stage"] = round(evaluate_fit(rr, fit.before_stage, pair=pair).model.mean_sre, 3)
    return out


def _stage_text(stage: dict | None) -> str:
    if not stage:
        return "-"
    before, after = stage["one_scale_down_sre"]
    return f"{stage['kernel']}, {'kept' if stage['kept'] else 'undone'} ({before:.2f} -> {after:.2f} dB one down)"


def _markdown(result: dict) -> str:
    nan = float("nan")
    lines = [f"Command: `{result['command']}`", "", f"Machine: {result['machine']}", ""]
    lines += [
        f"Runs: today = {result['today']}; default = {result['default']}; truth = {result['truth']}.",
        "Mean SRE (dB) on the RR reference (10 m truth of the 20 m bands); fit seconds in brackets.",
        "",
        "| texture | kernel | shift (src px) | today | default before stage | default | truth | default - truth | "
        "default - today | stage kernel, kept |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        get = r.get
        lines.append(
            f"| {r['texture']} | {r['kernel']} | {r['shift'][0]:+d}, {r['shift'][1]:+d} | "
            f"{get('today', nan):.2f} ({get('today_seconds', nan):.0f}) | {get('default_before_stage', nan):.2f} | "
            f"{get('default', nan):.2f} ({get('default_seconds', nan):.0f}) | "
            f"{get('truth', nan):.2f} ({get('truth_seconds', nan):.0f}) | "
            f"{get('default', nan) - get('truth', nan):+.2f} | {get('default', nan) - get('today', nan):+.2f} | "
            f"{_stage_text(get('default_stage'))} |"
        )
    rows = result["rows"]
    for a, b, bound in (("default", "truth", -0.3), ("default", "today", -0.1)):
        diffs = [r[a] - r[b] for r in rows if a in r and b in r]
        if diffs:
            lines += [
                "",
                f"{a} - {b}: {len(diffs)} cases, min {min(diffs):+.2f}, median {np.median(diffs):+.2f}, "
                f"max {max(diffs):+.2f} dB; {sum(d >= bound for d in diffs)} of {len(diffs)} at or above {bound:+.1f}.",
            ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", type=parse_case, default=CASES, metavar="TEXTURE:KERNEL:SR,SC")
    parser.add_argument(
        "--runs", nargs="+", default=["today", "default", "truth"], choices=["today", "default", "truth"]
    )
    parser.add_argument(
        "--fit-args", nargs="*", default=[], metavar="FIELD=VALUE", help="FitConfig fields of 'default'"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--stored",
        action="store_true",
        help="take today and truth from the 200-epoch seed-0 faithful_pair results where the case is there",
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "full_resolution_stage")
    parser.add_argument("--note", default="", help="a line about the conditions")
    args = parser.parse_args(argv)
    from ssc_edge.train.fit import FitConfig
    from ssc_edge.train.report import machine_info

    fields = {k: _value(v) for k, v in (a.split("=", 1) for a in args.fit_args)}
    default = FitConfig(seed=args.seed, **fields)
    today = FitConfig(seed=args.seed, epochs=200, batch_size=64, stage_iterations=0)  # the previous release's
    truth = replace(today)
    configs = {"today": today, "default": default, "truth": truth}
    machine = machine_info()
    result = {
        "command": "python benchmarks/full_resolution_stage.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{machine['cpu']}, {machine['cores']} cores. {args.note}".strip(),
        **{name: json.dumps(c.to_dict(), separators=(",", ":")) for name, c in configs.items()},
        "rows": [],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    sources: dict = {}
    stored = stored_runs() if args.stored and args.seed == 0 else {}
    for texture, kind, shift in args.cases:
        rr, true_pair = simulate(texture, kind, shift, sources)
        row = {"texture": texture, "kernel": kind, "shift": list(shift), "truth_offset": list(true_pair.offset)}
        row |= stored.get((texture, kind, tuple(shift)), {})
        for label in args.runs:
            if label in row:  # taken from the stored results
                continue
            row |= run_case(rr, true_pair, label, configs[label])
            print(texture, kind, shift, label, {k: v for k, v in row.items() if k.startswith(label)}, flush=True)
        result["rows"].append(row)
        (args.out / "full_resolution_stage.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out / "full_resolution_stage.md").write_text(_markdown(result))
    print(_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
