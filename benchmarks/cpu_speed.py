"""CPU speed of the ONNX runtime against TensorFlow/Keras on the same trained SSC-CNN and the same tiles.

Every configuration runs in this one process, interleaved (each timing round runs every configuration
once, in a rotating order, so that load from other processes falls on all alike), on the same ``--batch``
x ``--tile`` x ``--tile`` input built from the synthetic demo scene (or ``--calibrate`` SCENE).
Reported: median latency of ``--runs`` timed runs after ``--warmup`` untimed ones,
throughput (input megapixels/s), the ratio to the faster of the two Keras baselines, achieved GFLOP/s
(:func:`ssc_edge.runtime.flops.count_flops`, multiply-add = 2) and its fraction of this CPU's fp32 peak, and,
for every configuration that changes the arithmetic (int8, fp16, OpenVINO), the quality loss against the fp32
ONNX model (mean SRE difference, :mod:`ssc_edge.runtime.optimize`) with the 0.1 dB gate. OpenVINO runs
afterwards in a worker process under a second Python whose onnxruntime is ``onnxruntime-openvino`` (that
wheel replaces the ``onnxruntime`` package, so it lives in its own venv), interleaved among its own configs.

Levers measured: NHWC against NCHW export (``keras_to_onnx(layout=...)``), session options (graph optimisation
level, intra-op threads, spinning, sequential execution), int8 static QDQ (VNNI when the CPU has it), fp16,
and the OpenVINO execution provider (fp32 and its bf16 inference-precision hint).

The fp32 peak is ``physical cores x clock x FLOPs/cycle/core``: the clock is ``cpu MHz`` from /proc/cpuinfo
(the nominal clock a VM reports; turbo is not counted), FLOPs/cycle from the vector units the CPU family has
(see :func:`fp32_flops_per_cycle`).

Usage (writes ``OUT.json`` and ``OUT.md``)::

    python benchmarks/cpu_speed.py --model models/demo.onnx --tile 512 --runs 10 \\
        --ov-python /work/venv-ov/bin/python --out benchmarks/results/cpu_speed
    python benchmarks/cpu_speed.py --untrained --tile 128 --runs 2   # quick check, random weights

Needs the ``train`` extra (TensorFlow, tf2onnx, onnx).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORKER_FLAG = "--openvino-worker"


# --------------------------------------------------------------------------------------------- OpenVINO worker
def openvino_worker(argv: list[str]) -> None:
    """Run in the OpenVINO Python: time one model per config, save outputs; needs only onnxruntime + numpy."""
    import onnxruntime as ort

    spec = json.loads(Path(argv[0]).read_text())
    x = np.load(spec["input"])
    quality = np.load(spec["quality_input"])
    results, sessions = {}, {}
    for name, options in spec["configs"].items():
        try:
            start = time.perf_counter()
            session = ort.InferenceSession(spec["model"], providers=[("OpenVINOExecutionProvider", options)])
            session_s = time.perf_counter() - start
            if session.get_providers()[0] != "OpenVINOExecutionProvider":
                raise RuntimeError(f"fell back to {session.get_providers()}")
            for _ in range(spec["warmup"]):
                session.run(None, {"bands": x})
            out = Path(spec["outdir"]) / f"{len(sessions)}.npy"
            np.save(out, session.run(None, {"bands": quality})[0])
            sessions[name] = session
            results[name] = {"times": [], "session_s": session_s, "output": str(out)}
        except Exception as exc:  # a failing OpenVINO option is a result to report
            results[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
    names = list(sessions)
    for r in range(spec["runs"]):  # interleaved, rotating order
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            sessions[name].run(None, {"bands": x})
            results[name]["times"].append(time.perf_counter() - start)
    results["_versions"] = {"onnxruntime": ort.__version__, "providers": ort.get_available_providers()}
    Path(spec["result"]).write_text(json.dumps(results))


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == WORKER_FLAG:
    openvino_worker(sys.argv[2:])
    sys.exit(0)

# --------------------------------------------------------------------------------------------- main process
from ssc_edge import wald  # noqa: E402
from ssc_edge.contract import ModelContract  # noqa: E402
from ssc_edge.runtime.bench import machine_info  # noqa: E402
from ssc_edge.runtime.flops import count_flops  # noqa: E402
from ssc_edge.runtime.optimize import MAX_LOSS_DB, _evaluation_data, optimize_model  # noqa: E402


def fp32_flops_per_cycle(flags: list[str], cpu: str, family: int | None) -> tuple[int, str]:
    """fp32 FLOPs per cycle per core and the reasoning, from the CPU vendor, family and vector flags.

    FMA = 2 FLOPs per lane. AMD Zen 2/3/4 (family 23/25): two 256-bit FMA pipes = 2 x 8 x 2 = 32 (Zen 4 runs
    AVX-512 on the same 256-bit pipes, double-pumped). AMD Zen 5 (family 26): two 512-bit pipes = 64. Intel
    with AVX-512: two 512-bit FMA units on server parts = 64 (one-unit parts: 32). AVX2 + FMA: two 256-bit = 32.
    """
    amd = "AMD" in cpu.upper()
    if amd and family == 26:
        return 64, "AMD Zen 5: 2 x 512-bit FMA pipes x 16 fp32 lanes x 2 FLOPs"
    if amd:
        return 32, "AMD Zen 2-4 (family 23/25): 2 x 256-bit FMA pipes x 8 fp32 lanes x 2 FLOPs (AVX-512 double-pumped)"
    if "avx512f" in flags:
        return 64, "Intel AVX-512: 2 x 512-bit FMA units x 16 lanes x 2 FLOPs (32 on one-FMA-unit parts)"
    if "fma" in flags:
        return 32, "AVX2 + FMA: 2 x 256-bit FMA units x 8 lanes x 2 FLOPs"
    return 16, "SSE/AVX without FMA: assumed 16"


def cpu_peak(machine: dict) -> dict:
    """This CPU's fp32 peak, GFLOP/s, and how it was derived."""
    mhz, family = None, None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz") and mhz is None:
                mhz = float(line.split(":")[1])
            if line.startswith("cpu family") and family is None:
                family = int(line.split(":")[1])
    except OSError:
        pass
    per_cycle, why = fp32_flops_per_cycle(machine["cpu_flags"], machine["cpu"], family)
    cores = machine.get("physical_cores") or machine["logical_cores"]
    ghz = (mhz or 0.0) / 1000
    return {
        "gflop_per_s": cores * ghz * per_cycle,
        "cores": cores,
        "ghz": ghz,
        "flops_per_cycle": per_cycle,
        "derivation": f"{cores} cores x {ghz:.3f} GHz (/proc/cpuinfo cpu MHz) x {per_cycle} FLOPs/cycle ({why})",
    }


def keras_from_onnx(onnx_path: Path):
    """Rebuild the Keras SSC-CNN from the contract's architecture and load the ONNX model's weights into it.

    Used when the trainer's ``.keras`` is not beside the model (``models/`` ships none). tf2onnx names each
    Conv node ``<model>/<layer>_N/...``; its weight is OIHW (Keras: HWIO) and its bias the third input.
    """
    import onnx
    from onnx import numpy_helper

    from ssc_edge.runtime.optimize import read_contract
    from ssc_edge.train.model import ModelConfig, build_ssc_cnn

    proto = onnx.load(str(onnx_path))
    contract = read_contract(proto, source=onnx_path)
    model = build_ssc_cnn(ModelConfig.from_dict(contract.architecture))
    arrays = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    loaded = set()
    for node in proto.graph.node:
        if node.op_type != "Conv":
            continue
        layer_name = node.name.split("/")[1].rsplit("_", 1)[0]
        weights = [arrays[node.input[1]].transpose(2, 3, 1, 0)]
        if len(node.input) > 2 and node.input[2]:
            weights.append(arrays[node.input[2]])
        layer = model.get_layer(layer_name)
        if tuple(layer.weights[0].shape) != weights[0].shape:
            sys.exit(
                f"{onnx_path}: layer {layer_name} has weights {weights[0].shape} in ONNX but "
                f"{tuple(layer.weights[0].shape)} in Keras (a channel-padded export?); put its .keras beside it"
            )
        layer.set_weights(weights)
        loaded.add(layer_name)
    missing = {layer.name for layer in model.layers if layer.weights} - loaded
    if missing:
        sys.exit(f"{onnx_path}: no ONNX weights found for Keras layer(s) {sorted(missing)}")
    return model, contract


def load_models(args, tmp: Path):
    """(keras model, contract): the trained model (its .keras, or rebuilt from the ONNX weights), or an
    untrained default (paper-width) SSC-CNN with ``--untrained``."""
    import keras

    from ssc_edge.train.model import ModelConfig, build_ssc_cnn, receptive_halo

    if args.untrained:
        model = build_ssc_cnn(ModelConfig())
        return model, ModelContract(halo=receptive_halo(model), scale=10000.0, architecture=ModelConfig().to_dict())
    onnx_path = Path(args.model)
    keras_path = onnx_path.with_suffix(".keras")
    if keras_path.is_file():  # the trainer's own model; the ONNX file may carry the export's channel padding
        import onnx

        from ssc_edge.runtime.optimize import read_contract

        contract = read_contract(onnx.load(str(onnx_path)), source=onnx_path)
        return keras.models.load_model(keras_path, compile=False), contract
    return keras_from_onnx(onnx_path)


def export(model, contract: ModelContract, layout: str, path: Path, *, pad: bool = False) -> Path:
    """The Keras model as an ssc-edge ONNX file in ``layout`` (the trainer's exporter).

    ``pad``: apply :func:`~ssc_edge.train.export.pad_concat_channels`, as ``fit-and-export`` does since it
    was measured here; without it, the graph as tf2onnx makes it.
    """
    from ssc_edge.runtime.optimize import _set_contract
    from ssc_edge.train.export import keras_to_onnx, pad_concat_channels

    proto = keras_to_onnx(model, layout=layout)
    if pad:
        proto = pad_concat_channels(proto)
    _set_contract(proto, replace(contract, layout=layout))
    path.write_bytes(proto.SerializeToString())
    return path


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if layout == "NCHW" else x


def ort_session(
    path: Path, *, threads: int | None = None, level: str = "all", spinning: bool | None = None, sequential: bool = True
):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL if sequential else ort.ExecutionMode.ORT_PARALLEL
    if spinning is not None:
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def quality_loss(output_nhwc: np.ndarray, reference_sre: float, target: np.ndarray, scale: float) -> float:
    from ssc_edge.metrics import signal_to_reconstruction_error

    return reference_sre - float(np.mean(signal_to_reconstruction_error(target, output_nhwc[0] * scale)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model",
        type=Path,
        default=REPO / "models" / "demo.onnx",
        help="trained ssc-edge ONNX model with its .keras beside it",
    )
    parser.add_argument("--untrained", action="store_true", help="default SSC-CNN, random weights (speed only)")
    parser.add_argument("--calibrate", type=Path, help="scene for the input, int8 calibration and quality (.mat...)")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--ov-python", type=Path, help="Python whose onnxruntime is onnxruntime-openvino")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "benchmarks" / "results" / "cpu_speed",
        help="output stem: writes STEM.json and STEM.md",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from ssc_edge.demo import demo_scene
    from ssc_edge.io import read_scene

    machine = machine_info()
    machine["versions"].update(tensorflow=tf.__version__)
    peak = cpu_peak(machine)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="ssc-edge-cpu-speed-") as tmp_name:
        tmp = Path(tmp_name)
        model, contract = load_models(args, tmp)
        scene = read_scene(args.calibrate) if args.calibrate else demo_scene(size=max(64, args.tile))
        full = wald.full_scale_input(scene, upsampling=contract.upsampling) / np.float32(contract.scale)
        tile = full[: args.tile, : args.tile]
        if tile.shape[:2] != (args.tile, args.tile):
            tile = np.pad(tile, ((0, args.tile - tile.shape[0]), (0, args.tile - tile.shape[1]), (0, 0)), "reflect")
        x = np.ascontiguousarray(np.repeat(tile[None], args.batch, axis=0).astype(np.float32))
        eval_inputs, target, target_kind = _evaluation_data(scene, contract)
        q_in = (eval_inputs / np.float32(contract.scale))[None].astype(np.float32)
        models = {layout: export(model, contract, layout, tmp / f"{layout}.onnx") for layout in ("NHWC", "NCHW")}
        models["NHWC padded"] = export(model, contract, "NHWC", tmp / "NHWC-padded.onnx", pad=True)
        if not args.untrained:  # the Keras model must compute what the benchmarked ONNX model computes
            import onnxruntime as ort

            shipped = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
            probe = q_in[:, :64, :64]
            expected = np.asarray(model(probe, training=False))
            got = shipped.run(None, {"bands": to_layout(probe, contract.layout)})[0]
            got = got.transpose(0, 2, 3, 1) if contract.layout == "NCHW" else got
            parity = float(np.max(np.abs(got - expected)))
            if not parity < 1e-3:
                sys.exit(f"Keras and {args.model} disagree by {parity:.2e}: not the same model")
        gflop = count_flops(models["NHWC"], batch=args.batch, height=args.tile, width=args.tile).total / 1e9
        pixels = args.batch * args.tile**2

        def add(name: str, lever: str, times: list[float], loss: float | None = None, note: str = "") -> None:
            median = float(np.median(times))
            rows.append(
                {
                    "config": name,
                    "lever": lever,
                    "median_s": median,
                    "times_s": times,
                    "megapixels_per_s": pixels / median / 1e6,
                    "gflop_per_s": gflop / median,
                    "peak_fraction": gflop / median / peak["gflop_per_s"] if peak["gflop_per_s"] else None,
                    "quality_loss_db": loss,
                    "gate_passed": None if loss is None else loss <= MAX_LOSS_DB,
                    "note": note,
                }
            )
            print(
                f"{name:<34} {1e3 * median:9.1f} ms  {pixels / median / 1e6:6.3f} MP/s  {gflop / median:7.1f} "
                f"GFLOP/s" + ("" if loss is None else f"  loss {loss:+.3f} dB"),
                file=sys.stderr,
            )

        # Every in-process configuration: (call, lever, quality loss, note)
        configs: dict[str, tuple] = {}
        # --- Keras baselines (the same trained model, in-process)
        configs["keras: model(x)"] = (lambda: model(x, training=False), "baseline", None, "")
        function = tf.function(lambda t: model(t, training=False), reduce_retracing=True)
        configs["keras: tf.function"] = (lambda: function(x).numpy(), "baseline", None, "")

        # --- onnxruntime fp32: both layouts with default options, then session options on the exported layout
        from ssc_edge.metrics import signal_to_reconstruction_error

        for lay in ("NHWC", "NCHW"):
            session, feed = ort_session(models[lay]), {"bands": to_layout(x, lay)}
            configs[f"ort fp32 {lay} default"] = (lambda s=session, f=feed: s.run(None, f), "layout", None, "")
        session, feed = ort_session(models["NHWC padded"]), {"bands": x}
        configs["ort fp32 NHWC concat padded"] = (
            lambda s=session, f=feed: s.run(None, f),
            "channel padding",
            None,
            "skip branches padded to a multiple of 16 channels (exact)",
        )
        y = ort_session(models["NHWC"]).run(None, {"bands": q_in})[0]
        sre_fp32 = float(np.mean(signal_to_reconstruction_error(target, y[0] * contract.scale)))
        layout = contract.layout  # the one the trainer measured faster at export
        feed = {"bands": to_layout(x, layout)}
        cores = machine.get("physical_cores") or os.cpu_count()
        variants = {
            f"ort fp32 {layout} threads={cores} spin": {"threads": cores, "spinning": True},
            f"ort fp32 {layout} threads={cores} nospin": {"threads": cores, "spinning": False},
            f"ort fp32 {layout} threads=1": {"threads": 1},
            f"ort fp32 {layout} opt=basic": {"level": "basic"},
            f"ort fp32 {layout} opt=extended": {"level": "extended"},
            f"ort fp32 {layout} parallel": {"sequential": False, "threads": cores},
        }
        for name, options in variants.items():
            session = ort_session(models[layout], **options)
            configs[name] = (lambda s=session: s.run(None, feed), "session options", None, "")

        # --- precisions made by ssc-edge optimize (quality loss measured against the fp32 model on the scene)
        vnni = [f for f in machine["cpu_flags"] if "vnni" in f or "amx_int8" in f]
        for precision in ("int8", "fp16"):
            path = tmp / f"{layout}_{precision}.onnx"
            made = optimize_model(
                models[layout], precision=precision, out_path=path, calibration_scene=scene, force=True
            )
            session = ort_session(path, threads=cores, spinning=False)
            note = made.target + (
                f"; CPU int8 dot-product flags: {', '.join(vnni) or 'none'}" if precision == "int8" else ""
            )
            configs[f"ort {precision} {layout} threads={cores}"] = (
                lambda s=session: s.run(None, feed),
                precision,
                made.quality_loss_db,
                note,
            )

        # --- time them interleaved: round r runs every configuration once (rotating the order), so that load
        # from other processes on a shared machine falls on all configurations alike
        names = list(configs)
        for name in names:
            for _ in range(args.warmup):
                configs[name][0]()
        times: dict[str, list[float]] = {name: [] for name in names}
        for r in range(args.runs):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                start = time.perf_counter()
                configs[name][0]()
                times[name].append(time.perf_counter() - start)
        for name in names:
            _, lever, loss, note = configs[name]
            add(name, lever, times[name], loss, note)
        del configs

        # --- OpenVINO execution provider, in its own Python
        ov_versions = None
        if args.ov_python:
            ov_configs = {
                "openvino fp32 (ACCURACY)": {"device_type": "CPU", "precision": "ACCURACY"},
                "openvino default": {"device_type": "CPU"},
                "openvino bf16 hint": {
                    "device_type": "CPU",
                    "load_config": json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": "bf16"}}),
                },
            }
            np.save(tmp / "x.npy", feed["bands"])
            np.save(tmp / "q.npy", to_layout(q_in, layout))
            spec = {
                "model": str(models[layout]),
                "input": str(tmp / "x.npy"),
                "quality_input": str(tmp / "q.npy"),
                "configs": ov_configs,
                "warmup": args.warmup,
                "runs": args.runs,
                "outdir": tmp_name,
                "result": str(tmp / "ov.json"),
            }
            (tmp / "spec.json").write_text(json.dumps(spec))
            done = subprocess.run(
                [str(args.ov_python), __file__, WORKER_FLAG, str(tmp / "spec.json")],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                print(f"OpenVINO worker failed: {done.stderr[-2000:]}", file=sys.stderr)
            else:
                result = json.loads((tmp / "ov.json").read_text())
                ov_versions = result.pop("_versions")
                for name, res in result.items():
                    if "error" in res:
                        rows.append({"config": name, "lever": "openvino", "error": res["error"]})
                        print(f"{name}: {res['error']}", file=sys.stderr)
                        continue
                    y = np.load(res["output"])
                    y = y.transpose(0, 2, 3, 1) if layout == "NCHW" else y
                    add(name, "openvino", res["times"], quality_loss(y, sre_fp32, target, contract.scale), target_kind)

    baseline = min(r["median_s"] for r in rows if r.get("lever") == "baseline")
    for r in rows:
        if "median_s" in r:
            r["ratio_to_keras"] = baseline / r["median_s"]
    passing = [r for r in rows if "median_s" in r and r["lever"] != "baseline" and r["gate_passed"] is not False]
    best = max(passing, key=lambda r: r["ratio_to_keras"]) if passing else None
    fp32_ort = [r for r in rows if "median_s" in r and r["config"].startswith("ort fp32")]
    summary = {
        "best_fp32_onnxruntime": max(fp32_ort, key=lambda r: r["ratio_to_keras"])["config"] if fp32_ort else None,
        "best_fp32_onnxruntime_ratio": max((r["ratio_to_keras"] for r in fp32_ort), default=None),
        "best_passing_gate": None if best is None else best["config"],
        "best_passing_gate_ratio": None if best is None else best["ratio_to_keras"],
        "target_fp32_ratio": 1.0,
        "target_best_ratio": 1.5,
    }
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine,
        "peak": peak,
        "openvino": ov_versions,
        "settings": {
            "tile": args.tile,
            "batch": args.batch,
            "warmup": args.warmup,
            "runs": args.runs,
            "model": "untrained default SSC-CNN" if args.untrained else str(args.model),
            "scene": scene.name,
            "quality_target": target_kind,
            "gflop_per_run": gflop,
            "fp32_sre_db": sre_fp32,
            "loadavg": os.getloadavg(),
        },
        "summary": summary,
        "rows": rows,
    }
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}", file=sys.stderr)


def markdown(report: dict) -> str:
    m, p, s = report["machine"], report["peak"], report["settings"]
    lines = [
        "# CPU speed: onnxruntime against TensorFlow/Keras",
        "",
        f"- Command: `{report['command']}`",
        f"- Machine: {m['cpu']}, {m['physical_cores']} physical / {m['logical_cores']} logical cores, "
        f"flags {', '.join(m['cpu_flags'])}, {m['memory_gib']} GiB, {m['os']}",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in m['versions'].items())}"
        + (f"; OpenVINO worker onnxruntime {report['openvino']['onnxruntime']}" if report["openvino"] else ""),
        f"- fp32 peak: {p['gflop_per_s']:.0f} GFLOP/s = {p['derivation']}",
        f"- Input: {s['batch']} x {s['tile']} x {s['tile']} px from {s['scene']}; "
        f"{s['gflop_per_run']:.1f} GFLOP per run (multiply-add = 2); {s['runs']} timed runs after "
        f"{s['warmup']} warm-up, medians; model: {s['model']}",
        f"- Quality: mean SRE loss against the fp32 ONNX model ({s['fp32_sre_db']:.2f} dB against the "
        f"{s['quality_target']}), gate {MAX_LOSS_DB} dB; load average at the end {s['loadavg'][0]:.2f}",
        "",
        "| configuration | lever | median ms | MP/s | x Keras | GFLOP/s | % of peak | loss dB | gate |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["rows"]:
        if "error" in r:
            lines.append(f"| {r['config']} | {r['lever']} | failed: {r['error']} | | | | | | |")
            continue
        loss = "" if r["quality_loss_db"] is None else f"{r['quality_loss_db']:+.3f}"
        gate = "" if r["gate_passed"] is None else ("pass" if r["gate_passed"] else "FAIL")
        frac = "" if r["peak_fraction"] is None else f"{100 * r['peak_fraction']:.0f}"
        lines.append(
            f"| {r['config']} | {r['lever']} | {1e3 * r['median_s']:.1f} | {r['megapixels_per_s']:.3f} | "
            f"{r['ratio_to_keras']:.2f} | {r['gflop_per_s']:.1f} | {frac} | {loss} | {gate} |"
        )
    sm = report["summary"]
    lines += [
        "",
        f"Best fp32 onnxruntime: {sm['best_fp32_onnxruntime']} at "
        f"{sm['best_fp32_onnxruntime_ratio']:.2f}x Keras (target 1.0x). Best configuration within the gate: "
        f"{sm['best_passing_gate']} at "
        f"{sm['best_passing_gate_ratio']:.2f}x (target 1.5x).",
        f"Python {platform.python_version()}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
