"""``ssc-edge bench`` and ``ssc-edge optimize``: time a model across providers, make fp16 / int8 versions."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from ..errors import OptionError
from ._common import Force, Quiet, Verbose, echo, progress_for, setup_logging, write_json


def _split(text: str, what: str, cast: type = str) -> list:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise OptionError(f"--{what} is empty")
    try:
        return [cast(item) for item in items]
    except ValueError:
        raise OptionError(f"--{what} must be a comma-separated list of integers, got {text!r}") from None


def bench_command(
    model: Annotated[
        Path | None, typer.Argument(help="ssc-edge ONNX model. Default: the shipped models/demo.onnx.")
    ] = None,
    providers: Annotated[
        str, typer.Option(help="Comma-separated: cpu, cuda, tensorrt, openvino, coreml, dml.")
    ] = "cpu",
    tiles: Annotated[
        str, typer.Option(help="Comma-separated tile sides, pixels (halo included).")
    ] = "128,256,512,1024",
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes (tiles per run).")] = "1",
    precision: Annotated[
        str,
        typer.Option(help="Comma-separated: fp32, fp16, int8 (made on the fly, see optimize), bf16 (OpenVINO only)."),
    ] = "fp32",
    warmup: Annotated[int, typer.Option(help="Untimed runs per combination.")] = 5,
    runs: Annotated[int, typer.Option(help="Timed runs per combination.")] = 50,
    threads: Annotated[int | None, typer.Option(help="onnxruntime intra-op threads (default: its own choice).")] = None,
    calibrate: Annotated[
        Path | None, typer.Option(help="Scene to make and score fp16/int8 models on. Default: the demo scene.")
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the full results as JSON.")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG of latency against tile size (needs matplotlib).")
    ] = None,
    force: Force = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Time MODEL for every provider x precision x tile x batch; absent providers are 'not available' rows."""
    from ..io import check_outputs
    from ..runtime.bench import format_bench_table, plot_bench, run_benchmark
    from ..runtime.infer import default_model_path
    from ..runtime.optimize import DependencyError

    setup_logging(quiet=quiet, verbose=verbose)
    check_outputs([json_path, plot], inputs=[model], force=force)
    if plot is not None and importlib.util.find_spec("matplotlib") is None:
        raise DependencyError("--plot needs matplotlib: pip install matplotlib")
    result = run_benchmark(
        default_model_path() if model is None else model,
        providers=_split(providers, "providers"),
        precisions=_split(precision, "precision"),
        tiles=_split(tiles, "tiles", int),
        batches=_split(batch, "batch", int),
        warmup=warmup,
        runs=runs,
        threads=threads,
        calibration_scene=calibrate,
        progress=progress_for("run", quiet=quiet),
    )
    machine = result.machine
    gpus = ", ".join(g["name"] for g in machine["gpus"]) or "none"
    echo(
        f"{result.model} ({result.contract['layout']}, {result.contract['precision']}) on {machine['cpu']}, "
        f"{machine['logical_cores']} logical cores, GPU: {gpus}; onnxruntime {machine['versions']['onnxruntime']}",
        quiet=quiet,
    )
    typer.echo(format_bench_table(result))
    if json_path is not None:
        write_json(json_path, result.to_dict())
        echo(f"wrote {json_path}", quiet=quiet)
    if plot is not None:
        plot_bench(result, plot)
        echo(f"wrote {plot}", quiet=quiet)


def optimize_command(
    model: Annotated[Path, typer.Argument(help="fp32 ssc-edge ONNX model.")],
    precision: Annotated[str, typer.Option(help="fp16 or int8.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Optimized ONNX model to write.")],
    calibrate: Annotated[
        Path | None,
        typer.Option(
            help="Scene to calibrate int8 on and to measure the loss on (default: the synthetic demo scene; "
            "pass the scene the model was fitted on)."
        ),
    ] = None,
    max_loss: Annotated[float, typer.Option(help="Quality gate: largest mean-SRE loss against fp32, dB.")] = 0.1,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Overwrite OUT and write it even past the gate.")
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Convert MODEL to fp16 or int8; refuse it if it loses more than --max-loss dB of mean SRE (unless --force)."""
    from ..runtime.optimize import optimize_model

    setup_logging(quiet=quiet, verbose=verbose)
    result = optimize_model(
        model,
        precision=precision,
        out_path=output,
        calibration_scene=calibrate,
        force=force,
        max_loss_db=max_loss,
        progress=progress_for("step", quiet=quiet),
    )
    verdict = "passes" if result.passed else "FAILS (written because of --force)"
    echo(
        f"{precision}: mean SRE {result.sre_optimized_db:.3f} dB against fp32 {result.sre_fp32_db:.3f} dB "
        f"({result.target}, {result.scene}): loss {result.quality_loss_db:.3f} dB, {verdict} the {max_loss} dB gate",
        quiet=quiet,
    )
    typer.echo(f"wrote {result.path}")
