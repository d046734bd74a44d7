"""Benchmark an ssc-edge model across execution providers, precisions, tile sizes and batch sizes.

For every combination (provider, precision, tile, batch) :func:`run_benchmark` creates a fresh session (so
per-shape engine builds, e.g. TensorRT's, count in the first run), runs ``warmup`` untimed and ``runs`` timed
runs on random normalised input ``(batch, tile, tile, 10)`` (or NCHW, per the model), and records:

- ``session_s``, ``first_run_s``: session creation and the first run, s;
- ``p50_s``, ``p90_s``, ``p99_s``: latency percentiles of the timed runs, s per run of ``batch`` tiles;
- ``megapixels_per_s``: ``batch * tile**2 / p50 / 1e6``, input pixels (halo included) per second;
- ``gflop``: FLOPs of one run / 1e9 (:mod:`ssc_edge.runtime.flops`; None without ``onnx``), ``gflop_per_s``;
- ``peak_rss_mb``: the whole process's peak resident set while the row ran, MiB, sampled every 5 ms (compare
  rows, not absolute values across tools);
- ``quality_loss_db``, ``gate_passed``: the precision's mean-SRE loss against fp32 and its gate.

``bf16`` is OpenVINO's CPU inference-precision hint on the fp32 graph, its loss measured on the central 256 x 256
pixels of the calibration scene. Precisions other than the model's own are made by
:func:`ssc_edge.runtime.optimize.optimize_model` into a temporary folder (needs ``onnx``), the gate reported,
not enforced; TensorRT fp16 is the fp32 graph in TensorRT's fp16 engines, with the ONNX fp16 model's loss. A
provider or precision that is not offered here, or fails to start, is a 'not available' row.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import platform
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..contract import INPUT_NAME, OUTPUT_NAME
from ..errors import OptionError, SscEdgeError
from ..progress import ProgressCallback, report
from ..scene import Scene
from .hardware import machine_info
from .providers import PROVIDERS, STATIC_SHAPE_PROVIDERS, make_session
from .session import ModelFile, open_model

__all__ = [
    "BENCH_PRECISIONS",
    "BenchRow",
    "BenchReport",
    "run_benchmark",
    "machine_info",
    "format_bench_table",
    "plot_bench",
]

logger = logging.getLogger(__name__)

#: Precisions :func:`run_benchmark` accepts.
BENCH_PRECISIONS = ("fp32", "fp16", "int8", "bf16")
_OK, _NOT_AVAILABLE, _FAILED = "ok", "not available", "failed"


@dataclass(frozen=True)
class BenchRow:
    """One benchmarked combination; times in seconds, see the module docstring for each field.

    ``status`` is ``"ok"``, ``"not available"`` (provider or precision absent here; ``reason`` says why)
    or ``"failed"`` (the provider started but the run raised; ``reason`` holds the error).
    """

    provider: str
    precision: str
    tile: int
    batch: int
    status: str
    reason: str = ""
    session_s: float | None = None
    first_run_s: float | None = None
    p50_s: float | None = None
    p90_s: float | None = None
    p99_s: float | None = None
    megapixels_per_s: float | None = None
    gflop: float | None = None
    gflop_per_s: float | None = None
    peak_rss_mb: float | None = None
    quality_loss_db: float | None = None
    gate_passed: bool | None = None
    runs: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)


@dataclass
class BenchReport:
    """A whole benchmark: settings, machine, model and rows.

    Attributes
    ----------
    model : str
        Path of the benchmarked model.
    contract : dict
        Its layout, halo, precision, quality_loss_db and architecture.
    machine : dict
        :func:`machine_info`.
    settings : dict
        warmup, runs, threads, calibration scene.
    rows : list of BenchRow
    """

    model: str
    contract: dict[str, Any]
    machine: dict[str, Any]
    settings: dict[str, Any]
    rows: list[BenchRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (what ``ssc-edge bench --json`` writes)."""
        return {"ssc_edge_version": __version__, **asdict(self)}


def _rss_bytes() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        import resource

        scale = 1 if platform.system() == "Darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


@contextlib.contextmanager
def _peak_rss(interval: float = 0.005) -> Iterator[dict[str, int]]:
    """Sample the process RSS in a thread while the block runs; ``["peak"]`` is the largest value seen, bytes."""
    seen, stop = {"peak": _rss_bytes()}, threading.Event()

    def sample() -> None:
        while not stop.wait(interval):
            seen["peak"] = max(seen["peak"], _rss_bytes())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()
        seen["peak"] = max(seen["peak"], _rss_bytes())


def _make_session(model: ModelFile, provider: str, threads: int | None, shape: tuple[int, ...] | None, *,
                  fp16: bool = False, bf16: bool = False):  # fmt: skip
    """A session from the model's bytes that really runs on ``provider`` (:class:`SscEdgeError` when it cannot);
    providers that build per-shape engines get the one input ``shape``."""
    static = provider in STATIC_SHAPE_PROVIDERS
    session, _ = make_session(model.data, provider=provider, threads=threads, fp16=fp16, bf16=bf16,
                              input_shape=shape if static else None, name=model.path)  # fmt: skip
    return session


def _bench_one(
    model: ModelFile,
    provider: str,
    precision: str,
    tile: int,
    batch: int,
    *,
    warmup: int,
    runs: int,
    threads: int | None,
    flops: float | None,
    rng: np.random.Generator,
    trt_fp16: bool = False,
) -> BenchRow:
    contract = model.contract
    channels = contract.channels_in
    shape = (batch, channels, tile, tile) if contract.layout == "NCHW" else (batch, tile, tile, channels)
    feed = {INPUT_NAME: rng.uniform(0.0, 0.5, shape).astype(np.float32)}
    base = {"provider": provider, "precision": precision, "tile": tile, "batch": batch}
    with _peak_rss() as rss:
        start = time.perf_counter()
        try:
            session = _make_session(model, provider, threads, shape, fp16=trt_fp16, bf16=precision == "bf16")
        except (SscEdgeError, RuntimeError, ValueError) as exc:  # onnxruntime raises RuntimeError subclasses
            return BenchRow(**base, status=_NOT_AVAILABLE, reason=str(exc).splitlines()[0][:300])
        session_s = time.perf_counter() - start
        try:
            times = np.empty(1 + warmup + runs)  # the first run, the untimed warmup runs, the timed runs
            for i in range(len(times)):
                start = time.perf_counter()
                session.run([OUTPUT_NAME], feed)
                times[i] = time.perf_counter() - start
            first, times = float(times[0]), times[1 + warmup :]
        except Exception as exc:  # a provider that starts and then cannot run this shape is a result, not a crash
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            return BenchRow(**base, status=_FAILED, reason=reason, session_s=session_s)
        finally:
            del session
    p50, p90, p99 = (float(np.percentile(times, q)) for q in (50, 90, 99))
    gflop = None if flops is None else flops / 1e9
    return BenchRow(
        **base,
        status=_OK,
        session_s=session_s,
        first_run_s=first,
        p50_s=p50,
        p90_s=p90,
        p99_s=p99,
        megapixels_per_s=batch * tile * tile / p50 / 1e6,
        gflop=gflop,
        gflop_per_s=None if gflop is None else gflop / p50,
        peak_rss_mb=rss["peak"] / 2**20,
        runs=runs,
    )


def _positive_ints(values: Sequence[int], what: str, minimum: int = 1) -> tuple[int, ...]:
    out = []
    for value in values:
        if isinstance(value, bool) or int(value) != value or value < minimum:
            raise OptionError(f"{what} must be integers >= {minimum}, got {value!r}")
        out.append(int(value))
    if not out:
        raise OptionError(f"give at least one {what[:-1] if what.endswith('s') else what}")
    return tuple(out)


@contextlib.contextmanager
def _precision_models(
    model: ModelFile, precisions: Sequence[str], calibration_scene: Path | Scene | None
) -> Iterator[dict[str, tuple[ModelFile | None, dict]]]:
    """``{precision: (model or None, info)}``; made models live in a temporary folder for the block."""
    from .optimize import MAX_LOSS_DB, optimize_model

    contract = model.contract
    with tempfile.TemporaryDirectory(prefix="ssc-edge-bench-") as tmp:
        models: dict[str, tuple[ModelFile | None, dict]] = {}
        for precision in precisions:
            if precision == "bf16" and contract.precision == "fp32":  # an OpenVINO hint on the fp32 graph
                models[precision] = (model, {})
            elif precision == contract.precision:
                loss = contract.quality_loss_db
                models[precision] = (model, {"quality_loss_db": loss, "gate_passed": loss <= MAX_LOSS_DB})
            elif contract.precision != "fp32":
                models[precision] = (None, {"reason": f"the model is {contract.precision}; bench its fp32 parent"})
            else:
                try:
                    made = optimize_model(model, precision=precision, out_path=Path(tmp) / f"{precision}.onnx",
                                          calibration_scene=calibration_scene, force=True)  # fmt: skip
                except SscEdgeError as exc:
                    models[precision] = (None, {"reason": f"cannot make {precision}: {exc}"})
                    continue
                info = {"quality_loss_db": made.quality_loss_db, "gate_passed": made.passed}
                models[precision] = (open_model(made.path), info)
        yield models


def run_benchmark(
    model_path: Path,
    *,
    providers: Sequence[str] = ("cpu",),
    precisions: Sequence[str] = ("fp32",),
    tiles: Sequence[int] = (256,),
    batches: Sequence[int] = (1,),
    warmup: int = 5,
    runs: int = 50,
    threads: int | None = None,
    calibration_scene: Path | Scene | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> BenchReport:
    """Time ``model_path`` on every (provider, precision, tile, batch) combination.

    Parameters
    ----------
    model_path : Path
        An ssc-edge ONNX model, read once (:func:`~ssc_edge.runtime.session.open_model`): every session, the
        FLOP count and the made precisions come from its bytes.
    providers : sequence of str
        Short names (:data:`~ssc_edge.runtime.providers.PROVIDERS`); absent ones give 'not available' rows.
    precisions : sequence of {"fp32", "fp16", "int8", "bf16"}
        See the module docstring for how other precisions than the model's own are made.
    tiles : sequence of int
        Square tile sides, pixels of the fine grid (halo included); each must be at least ``2 * halo + 1``.
    batches : sequence of int
        Tiles per run.
    warmup, runs : int
        Untimed and timed runs per combination (``runs >= 1``).
    threads : int, optional
        onnxruntime intra-op threads (default: onnxruntime's choice, one per physical core).
    calibration_scene : Path, Scene or None
        Scene used to make and measure fp16/int8 models (default: the synthetic demo scene).
    seed : int
        Seed of the random input.
    progress : callable, optional
        Called after each combination with ``"provider precision tile xbatch: status"``.
    """
    model_path = Path(model_path)
    providers = tuple(providers)
    for values, known, what in ((providers, PROVIDERS, "provider"), (precisions, BENCH_PRECISIONS, "precision")):
        unknown = [v for v in values if v not in known]
        if unknown or not values:
            raise OptionError(f"unknown {what}(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}")
    tiles, batches = _positive_ints(tiles, "tiles"), _positive_ints(batches, "batches")
    (runs,) = _positive_ints([runs], "runs")
    (warmup,) = _positive_ints([warmup], "warmup", minimum=0)
    if threads is not None:
        (threads,) = _positive_ints([threads], "threads")
    model = open_model(model_path)
    contract = model.contract
    small = [t for t in tiles if t < 2 * contract.halo + 1]
    if small:
        raise OptionError(f"tile(s) {small} smaller than 2 x halo + 1 = {2 * contract.halo + 1} px of this model")
    flops = _flops_per_shape(model, tiles, batches)
    calibration_name = "synthetic demo scene" if calibration_scene is None else str(calibration_scene)
    calibration_name = calibration_scene.name if isinstance(calibration_scene, Scene) else calibration_name
    bench = BenchReport(
        model=str(model_path),
        contract={
            "layout": contract.layout,
            "halo": contract.halo,
            "precision": contract.precision,
            "quality_loss_db": contract.quality_loss_db,
            "architecture": contract.architecture,
            "flops_per_pixel": None if not flops else next(iter(flops.values())) / (batches[0] * tiles[0] ** 2),
        },
        machine=machine_info(),
        settings={
            "warmup": warmup,
            "runs": runs,
            "threads": threads,
            "seed": seed,
            "calibration_scene": calibration_name,
            "flops_convention": "multiply-add = 2 FLOPs; see ssc_edge.runtime.flops",
        },
    )
    total = len(providers) * len(precisions) * len(tiles) * len(batches)
    rng = np.random.default_rng(seed)
    with _precision_models(model, precisions, calibration_scene) as models:
        for provider, precision, tile, batch in itertools.product(providers, precisions, tiles, batches):
            made, info = models[precision]
            trt_fp16 = provider == "tensorrt" and precision == "fp16" and contract.precision == "fp32"
            if trt_fp16:  # TensorRT makes fp16 engines from the fp32 graph itself
                made = model
            if made is None:
                row = BenchRow(provider, precision, tile, batch, _NOT_AVAILABLE, reason=info["reason"])
            elif precision == "bf16" and provider != "openvino":
                reason = "bf16 is OpenVINO's CPU inference-precision hint; use --providers openvino"
                row = BenchRow(provider, precision, tile, batch, _NOT_AVAILABLE, reason=reason)
            else:
                row = _bench_one(made, provider, precision, tile, batch, warmup=warmup, runs=runs, threads=threads,
                                 flops=flops.get((tile, batch)), rng=rng, trt_fp16=trt_fp16)  # fmt: skip
                if precision == "bf16" and row.status == _OK and "quality_loss_db" not in info:
                    info.update(_provider_loss(model, provider, calibration_scene))
                row = replace(row, quality_loss_db=info.get("quality_loss_db"), gate_passed=info.get("gate_passed"))
            bench.rows.append(row)
            report(progress, len(bench.rows), total, f"{provider} {precision} {tile} x{batch}: {row.status}")
    return bench


def _provider_loss(model: ModelFile, provider: str, calibration_scene: Path | Scene | None) -> dict[str, Any]:
    """Mean-SRE loss of bf16 on ``provider`` against fp32 on the CPU, as optimize measures it.

    Whole-image runs on the central 256 x 256 pixels of the calibration scene (see
    :mod:`ssc_edge.runtime.optimize` for the target).
    """
    from .optimize import MAX_LOSS_DB, _evaluation_data, _mean_sre, _scene

    inputs, target, _ = _evaluation_data(_scene(calibration_scene), model.contract, size=256)
    reference = _make_session(model, "cpu", None, None)
    candidate = _make_session(model, provider, None, None, bf16=True)
    loss = _mean_sre(reference, inputs, target, model.contract) - _mean_sre(candidate, inputs, target, model.contract)
    return {"quality_loss_db": loss, "gate_passed": loss <= MAX_LOSS_DB}


def _flops_per_shape(model: ModelFile, tiles: Sequence[int], batches: Sequence[int]) -> dict[tuple[int, int], float]:
    """FLOPs per (tile, batch); empty when ``onnx`` is missing (FLOPs are linear in pixels: count once)."""
    from .flops import FlopsUnavailable, count_flops

    try:
        probe = count_flops(model.data, batch=1, height=tiles[0], width=tiles[0])
    except FlopsUnavailable:
        logger.warning("FLOPs not counted: onnx is not installed")
        return {}
    # 'same'-padded stride-1 convolutions: FLOPs are proportional to the number of input pixels.
    return {(t, b): probe.per_pixel * b * t * t for t in tiles for b in batches}


def _fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def format_bench_table(bench: BenchReport) -> str:
    """A plain-text table of the rows (latencies in ms)."""
    header = (
        f"{'provider':<9} {'prec':<5} {'tile':>5} {'batch':>5} {'session ms':>10} {'first ms':>9} "
        f"{'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'MP/s':>7} {'GFLOP/s':>8} {'RSS MiB':>8} {'loss dB':>8} "
        "gate"
    )
    lines = [header, "-" * len(header)]
    for r in bench.rows:
        start = f"{r.provider:<9} {r.precision:<5} {r.tile:>5} {r.batch:>5} "
        if r.status != _OK:
            lines.append(start + f"{r.status}: {r.reason}")
            continue
        lines.append(
            start + f"{_fmt(r.session_s, '10.1f', 1e3)} {_fmt(r.first_run_s, '9.1f', 1e3)} "
            f"{_fmt(r.p50_s, '9.2f', 1e3)} {_fmt(r.p90_s, '9.2f', 1e3)} {_fmt(r.p99_s, '9.2f', 1e3)} "
            f"{_fmt(r.megapixels_per_s, '7.2f')} {_fmt(r.gflop_per_s, '8.1f')} "
            f"{_fmt(r.peak_rss_mb, '8.0f')} {_fmt(r.quality_loss_db, '8.3f')} "
            f"{'-' if r.gate_passed is None else 'pass' if r.gate_passed else 'FAIL'}"
        )
    return "\n".join(lines)


def plot_bench(bench: BenchReport, path: Path) -> Path:
    """Plot p50 latency per tile against tile size, one line per (provider, precision, batch); write a PNG.

    Latency is normalised per tile (``p50 / batch``, ms) so batch sizes share an axis. Needs matplotlib.

    Raises
    ------
    DependencyError
        If matplotlib is not installed.
    """
    from .optimize import DependencyError

    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise DependencyError("--plot needs matplotlib: pip install matplotlib") from None
    from ..io import atomic_output

    series: dict[tuple[str, str, int], list[tuple[int, float]]] = {}
    for r in bench.rows:
        if r.status == _OK and r.p50_s is not None:
            series.setdefault((r.provider, r.precision, r.batch), []).append((r.tile, 1e3 * r.p50_s / r.batch))
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for (provider, precision, batch), points in sorted(series.items()):
        points.sort()
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"{provider} {precision} x{batch}")
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xlabel("tile side, px")
    axes.set_ylabel("p50 latency per tile, ms")
    axes.set_title(f"{Path(bench.model).name} on {bench.machine.get('cpu', '?')}", fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    if series:
        axes.legend(fontsize=8)
    path = Path(path)
    with atomic_output(path) as tmp:
        figure.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(figure)
    return path
