"""``ssc-edge batch``: sharpen many scenes into one output folder, resumably."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import Quiet, Verbose, echo, progress_for, quiet_tensorflow, setup_logging


def batch_command(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Scene files (.mat, .npz, multi-band GeoTIFF), SAFE products (.SAFE or .zip), band folders "
            "(JP2 or GeoTIFF band files), folders of scenes, CSV/JSON scene lists."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (outputs, reports, batch.json).")],
    mode: Annotated[
        str | None,
        typer.Option(
            help="fit-and-infer (fit a model per scene) or infer (run --model on every scene). "
            "Default: infer with --model, else fit-and-infer."
        ),
    ] = None,
    model: Annotated[Path | None, typer.Option(help="ONNX model of mode infer.")] = None,
    model_60m: Annotated[
        Path | None,
        typer.Option(
            "--model-60m",
            help="Also run this 60 m model (NAME_60m.onnx from fit-and-export --bands all) on the same tiles "
            "(mode infer): adds B01 and B09; with --with-fine the product has all 12 bands.",
            show_default=False,
        ),
    ] = None,
    with_fine: Annotated[
        bool,
        typer.Option(
            "--with-fine", help="Write the complete 10 m product (10 m bands + sharpened; 12 bands with --model-60m)."
        ),
    ] = False,
    engine: Annotated[
        str, typer.Option(help="local (process pool) or ray (Ray actors and tasks; needs the 'distributed' extra).")
    ] = "local",
    workers: Annotated[int, typer.Option(help="Worker processes (engine ray: Ray actors).")] = 1,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster address, e.g. auto or ray://HOST:10001 (engine ray; default: a local Ray)."),
    ] = None,
    split: Annotated[
        int,
        typer.Option(
            help="Row bands per scene (engine ray, mode infer): each scene's tiles are shared out by bands of "
            "tile rows between the workers and stitched; same result as 1."
        ),
    ] = 1,
    tile: Annotated[
        int | None,
        typer.Option(
            help="Window side of the sharpener, 10 m px (default 512); smaller tiles give finer row bands with --split."
        ),
    ] = None,
    retries: Annotated[
        int | None, typer.Option(help="Times Ray reruns a scene whose worker died (engine ray; default 2).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs per scene (mode fit-and-infer).")] = None,
    degradation: Annotated[
        str, typer.Option(help="Training degradation (mode fit-and-infer): auto (estimated per scene), bicubic or mtf.")
    ] = "auto",
    registration: Annotated[
        str, typer.Option(help="Training pair registration (mode fit-and-infer): auto (estimated per scene) or none.")
    ] = "auto",
    precision: Annotated[
        str,
        typer.Option(
            help="auto (bf16 where the CPU runs it natively, OpenVINO is installed and the model loses <= 0.1 dB; "
            "else fp32), fp32, bf16, fp16 or int8 (models made by ssc-edge optimize)."
        ),
    ] = "auto",
    output_format: Annotated[str, typer.Option("--format", help="Output format: tif, npz or mat.")] = "tif",
    dtype: Annotated[str, typer.Option(help="Output sample type: float32 or uint16 (DN).")] = "float32",
    cog: Annotated[
        bool,
        typer.Option(
            "--cog/--no-cog",
            help="Write tif outputs as Cloud-Optimized GeoTIFFs (512 px tiles, DEFLATE, average overviews); "
            "--no-cog: plain tiled GeoTIFFs without overviews (faster to write).",
        ),
    ] = True,
    wait: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seconds to wait at the end for scenes another live run holds (default: until it releases them); "
            "scenes still held then are left pending and the exit status is 1.",
        ),
    ] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Sharpen every scene of INPUTS into OUT; a rerun skips finished scenes and retries failed ones.

    Several runs may share one OUT at the same time: each scene is claimed by one of them, the
    others skip it and, at their end, wait for it (taking it over if its run died).
    """
    setup_logging(quiet=quiet, verbose=verbose)
    from ..batch import BatchConfig, run_batch

    mode = mode or ("infer" if model is not None else "fit-and-infer")
    if mode == "fit-and-infer" and not verbose:  # TensorFlow's C++ start-up chatter, in every worker
        quiet_tensorflow()
    config = BatchConfig(mode=mode, model=model, workers=workers, output_format=output_format, dtype=dtype,
                         epochs=epochs, split=split, tile=tile,
                         fit_options={"degradation": degradation, "registration": registration}
                         if mode == "fit-and-infer" else {},
                         precision=precision, cog=cog, model_60m=model_60m, with_fine=with_fine, wait=wait)  # fmt: skip
    result = run_batch(inputs, out, config, engine=engine, ray_address=ray_address, retries=retries,
                       progress=progress_for("scene", quiet=quiet))  # fmt: skip
    done, failed, skipped = result.count("done"), result.count("failed"), result.count("skipped")
    concurrent = sum(1 for record in result.records if record.get("done_by_other_run"))
    earlier = f"{skipped - concurrent} from an earlier run" + (f", {concurrent} by another run" if concurrent else "")
    echo(f"{done} done ({earlier}), {failed} failed in {result.seconds:.1f} s; "
         f"manifest {result.manifest}", quiet=False)  # fmt: skip
    for record in result.records:
        if record["status"] == "failed":
            echo(f"failed: {record['source']}: {record['error']}", err=True)
    held = [record for record in result.records if record["status"] == "pending"]
    for record in held:
        holder = record.get("claimed_by") or {}
        echo(f"pending: {record['source']}: still held by another run (pid {holder.get('pid', '?')} on "
             f"{holder.get('host', '?')}) after --wait {wait or 0:g} s; rerun to take it over", err=True)  # fmt: skip
    if failed or held:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``batch`` to ``app``."""
    app.command("batch")(batch_command)
