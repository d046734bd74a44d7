"""``ssc-edge batch``: sharpen many scenes into one output folder, resumably."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import (
    Cog,
    Dtype,
    Model60m,
    Precision,
    Provider,
    Quiet,
    Threads,
    Verbose,
    WithFine,
    echo,
    progress_for,
    quiet_tensorflow,
    setup_logging,
)


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
    model_60m: Model60m = None,
    with_fine: WithFine = False,
    provider: Provider = "auto",
    threads: Threads = None,
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
    stage_iterations: Annotated[
        int | None,
        typer.Option(min=0, help="Full-resolution stage steps per scene (mode fit-and-infer; 0: off; default 100)."),
    ] = None,
    precision: Precision = "auto",
    output_format: Annotated[str, typer.Option("--format", help="Output format: tif, npz or mat.")] = "tif",
    dtype: Dtype = "float32",
    cog: Cog = True,
    wait: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seconds to wait for another live run: for the scenes it holds, at the end (default: until it "
            "releases them; scenes still held then are left pending and the exit status is 1), and for the manifest's "
            "lock at each update (one line and exit status 2 if the last update cannot take it).",
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
    fit_options = {"degradation": degradation, "registration": registration}
    if stage_iterations is not None:
        fit_options["stage_iterations"] = stage_iterations
    if mode == "fit-and-infer" and not verbose:  # TensorFlow's C++ start-up chatter, in every worker
        quiet_tensorflow()
    config = BatchConfig(mode=mode, model=model, workers=workers, output_format=output_format, dtype=dtype,
                         epochs=epochs, split=split, tile=tile,
                         fit_options=fit_options if mode == "fit-and-infer" else {},
                         precision=precision, cog=cog, model_60m=model_60m, with_fine=with_fine, wait=wait,
                         provider=provider, threads=threads)  # fmt: skip
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
