"""``ssc-edge fit-and-export``: fit SSC-CNN on one scene and write an ONNX model with its report.

TensorFlow is imported only inside the command body, so other commands never load it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from ._common import Force, Quiet, Verbose, echo, progress_for, quiet_tensorflow, setup_logging

_DEFAULT_OUTPUT = Path("model.onnx")  # the current folder: never the package's models/ (installed data)


def fit_and_export_command(
    scene: Annotated[
        Path | None,
        typer.Argument(
            help="Scene: a Sentinel-2 SAFE folder or its .zip, a folder of band rasters named by band (JP2, "
            "GeoTIFF), a multi-band GeoTIFF, .mat or .npz. Default: the synthetic demo scene."
        ),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="ONNX model to write; .keras, .json and .md go beside it.")
    ] = _DEFAULT_OUTPUT,
    epochs: Annotated[
        int | None, typer.Option(help="Training epochs [default: 50; 200 with --protocol paper].")
    ] = None,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = 5e-4,
    lr_schedule: Annotated[
        str, typer.Option(help="Learning-rate schedule: constant or cosine (decay to 1 % over all steps).")
    ] = "constant",
    batch_size: Annotated[
        int | None, typer.Option(help="Patches per step [default: 16; 64 with --protocol paper].")
    ] = None,
    patch: Annotated[int, typer.Option(help="Training patch side, pixels.")] = 16,
    stride: Annotated[int, typer.Option(help="Distance between patches, pixels.")] = 8,
    protocol: Annotated[
        str, typer.Option(help="heldout (train one scale down) or paper (fit the RR reference: training-set numbers).")
    ] = "heldout",
    degradation: Annotated[
        str,
        typer.Option(help="How heldout degrades the scene: auto (kernel estimated from the scene), bicubic or mtf."),
    ] = "auto",
    registration: Annotated[
        str,
        typer.Option(help="auto: the training pair keeps the 20 m grid's offset estimated from the scene; none."),
    ] = "auto",
    upsampling: Annotated[str, typer.Option(help="Upsampling of the 20 m bands: bicubic or spline.")] = "bicubic",
    residual: Annotated[bool, typer.Option("--residual/--no-residual", help="Global residual (paper).")] = True,
    skip_kernel: Annotated[int, typer.Option(help="Skip convolution kernel: 1 or 3.")] = 1,
    last_kernel: Annotated[int, typer.Option(help="Last convolution kernel: 1 or 3.")] = 1,
    blocks: Annotated[int, typer.Option(help="Convolutions per branch (K).")] = 3,
    width: Annotated[int, typer.Option(help="Filters per 3x3 convolution.")] = 128,
    skip_width: Annotated[int, typer.Option(help="Filters per skip convolution.")] = 25,
    precision: Annotated[
        str, typer.Option(help="Training compute: auto, float32 or mixed_bfloat16 (the export is float32).")
    ] = "auto",
    xla: Annotated[bool, typer.Option("--xla/--no-xla", help="Compile the training step with XLA.")] = False,
    augment: Annotated[
        bool, typer.Option("--augment/--no-augment", help="Random 90-degree rotations and flips of each batch.")
    ] = False,
    checkpoint: Annotated[
        str,
        typer.Option(help="Epoch kept: auto, patch-loss (training loss) or image-loss (whole training pair)."),
    ] = "auto",
    ema: Annotated[
        float | None,
        typer.Option(
            help="Per-epoch decay of a moving average of the weights, kept instead of the best epoch; 0: off. "
            "Default: 0.98 for heldout, off for paper.",
            show_default=False,
        ),
    ] = None,
    ema_start: Annotated[
        float | None,
        typer.Option(
            help="Share of the epochs after which the weight average starts over (0: from the first step). "
            "Default: 1/3.",
            show_default=False,
        ),
    ] = None,
    patches: Annotated[
        int | None,
        typer.Option(
            help="Most training patches drawn from the scene (a uniform random sample of those free of no-data; "
            "also bounds the report's second fit). Default: 512.",
            show_default=False,
        ),
    ] = None,
    evaluation: Annotated[
        str,
        typer.Option(
            help="How the report scores a scene without a reference: auto (a spatial hold-out when the fit drew at "
            "most half of the scene's patches, as on a full tile; else one-scale-down), one-scale-down (a second "
            "fit two scales down) or spatial-holdout (the model on training-pair windows clear of its patches)."
        ),
    ] = "auto",
    score_before_stage: Annotated[
        bool,
        typer.Option(
            help="Also score the fit before the full-resolution stage on the spatial hold-out's windows (the "
            "report's 'before the stage' figure; a second inference of each window, ~12 s on a full tile)."
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, patch order and patch sample.")] = 0,
    stage_iterations: Annotated[
        int | None,
        typer.Option(
            help="Steps of the full-resolution stage on the scene's own 10 m grid (0: off; heldout only). "
            "Default: 100.",
            show_default=False,
        ),
    ] = None,
    stage_kernel: Annotated[
        str,
        typer.Option(
            help="Blur of the 20 m bands in the stage: auto (nominal MTF, or the estimate when it is imresize's), "
            "nominal, estimated or wider."
        ),
    ] = "auto",
    bands: Annotated[
        str,
        typer.Option(
            help="Models to fit: 20m (default), all (the 20 m model to OUTPUT and the 60 m model, B01/B09, to "
            "NAME_60m.onnx; 20 m only, with a note, when the scene has no usable 60 m bands), or 60m (to OUTPUT)."
        ),
    ] = "20m",
    demo_size: Annotated[int, typer.Option(help="Side of the demo scene when no SCENE is given, 10 m pixels.")] = 256,
    keras_file: Annotated[bool, typer.Option("--keras/--no-keras", help="Also write the .keras model.")] = True,
    force: Force = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Fit SSC-CNN on SCENE (zero-shot) and export a self-describing ONNX model plus its report."""
    setup_logging(quiet=quiet, verbose=verbose)
    if not verbose:  # TensorFlow's C++ start-up chatter and tf2onnx's INFO lines are noise here
        quiet_tensorflow()
        logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    from ..train import FitConfig, ModelConfig
    from ..train.bandsets import fit_and_export_bands

    config = FitConfig.for_protocol(
        protocol,
        patch_budget=patches,
        epochs=epochs,
        learning_rate=lr,
        lr_schedule=lr_schedule,
        batch_size=batch_size,
        patch=patch,
        stride=stride,
        degradation=degradation,
        registration=registration,
        upsampling=upsampling,
        seed=seed,
        precision=precision,
        jit_compile=xla,
        augment=augment,
        checkpoint=checkpoint,
        ema=ema,
        ema_start=ema_start,
        stage_iterations=stage_iterations,
        stage_kernel=stage_kernel,
        model=ModelConfig(
            blocks=blocks,
            width=width,
            skip_width=skip_width,
            skip_kernel=skip_kernel,
            last_kernel=last_kernel,
            residual=residual,
        ),
    )
    results = fit_and_export_bands(
        scene if scene is not None else demo_size,
        output,
        config,
        bands=bands,
        force=force,
        write_keras=keras_file,
        progress=progress_for("epoch", quiet=quiet),
        evaluation=evaluation,
        score_before_stage=score_before_stage,
    )
    for result in results.values():
        evaluation = result.evaluation
        label = " (TRAINING-SET numbers)" if evaluation.training_set_numbers else ""
        stage = result.fit.stage
        staged = f" + full-resolution stage {stage['iterations']} steps {stage['seconds']:.1f} s" if stage else ""
        echo(
            f"wrote {result.paths['onnx']} ({' '.join(result.contract.output_bands)}, {result.contract.layout}, "
            f"halo {result.contract.halo} px), fit {result.fit.seconds:.1f} s on {result.fit.patches} of "
            f"{result.fit.candidates} patches from {result.fit.windows} window(s), "
            f"best epoch {result.fit.best_epoch}{staged}",
        )
        echo(
            f"mean SRE{label}: SSC-CNN {evaluation.model.mean_sre:.2f} dB, "
            f"bicubic {evaluation.bicubic.mean_sre:.2f} dB [{evaluation.kind}]",
        )
