"""Load an ssc-edge ONNX model, check it against its contract, and run it on (N, H, W, C) batches.

This is the only place in the library that changes tensor layout: callers hand in and get back
(N, H, W, C) arrays of normalised DN; a model exported as NCHW sees (N, C, H, W).

Only onnxruntime is needed (the ``onnx`` package is not): metadata comes from
``session.get_modelmeta().custom_metadata_map``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..bands import GSD
from ..contract import INPUT_NAME, OUTPUT_NAME, ModelContract
from ..errors import ModelError
from ..wald import UPSAMPLING_METHODS
from .providers import make_session

__all__ = ["LoadedModel", "load_model", "check_contract"]

logger = logging.getLogger(__name__)


def _channel_axis(layout: str) -> int:
    return 3 if layout == "NHWC" else 1


def _describe_shape(shape: Sequence[Any]) -> str:
    return "(" + ", ".join(str(d) if d is not None else "?" for d in shape) + ")"


def check_contract(session, contract: ModelContract, *, source: object = "model") -> None:
    """Check that a session's graph keeps the promises of its contract.

    Raises
    ------
    ModelError
        Input or output missing or misnamed, not float32, not rank 4, or with a channel count
        other than the contract's band lists; bands that are not Sentinel-2 10/20/60 m bands;
        a ratio other than 2 (20 m outputs) or 6 (60 m outputs); an unknown upsampling method.
    """
    inputs, outputs = session.get_inputs(), session.get_outputs()
    names = [i.name for i in inputs]
    if names != [INPUT_NAME]:
        raise ModelError(f"{source}: expected one input named {INPUT_NAME!r}, found {names}")
    if OUTPUT_NAME not in [o.name for o in outputs]:
        raise ModelError(f"{source}: no output named {OUTPUT_NAME!r} (found {[o.name for o in outputs]})")
    output = next(o for o in outputs if o.name == OUTPUT_NAME)
    axis = _channel_axis(contract.layout)
    for value, channels, bands in (
        (inputs[0], contract.channels_in, contract.input_bands),
        (output, contract.channels_out, contract.output_bands),
    ):
        if value.type != "tensor(float)":
            raise ModelError(f"{source}: {value.name!r} is {value.type}, expected tensor(float) (float32)")
        shape = list(value.shape)
        layout = "(batch, height, width, channels)" if contract.layout == "NHWC" else "(batch, channels, height, width)"
        if len(shape) != 4:
            raise ModelError(
                f"{source}: {value.name!r} has rank {len(shape)} {_describe_shape(shape)}, "
                f"expected rank 4 {layout} ({contract.layout})"
            )
        if isinstance(shape[axis], int) and shape[axis] != channels:
            raise ModelError(
                f"{source}: {value.name!r} has {shape[axis]} channels {_describe_shape(shape)} but its metadata "
                f"lists {channels} bands ({', '.join(bands)}) in {contract.layout}"
            )
    ratios = {GSD.get(b, 0) // 10 for b in contract.output_bands}
    if contract.ratio not in (2, 6) or ratios != {contract.ratio}:
        raise ModelError(
            f"{source}: resolution ratio {contract.ratio} for output bands {', '.join(contract.output_bands)}; "
            "this runtime sharpens 20 m bands (ratio 2) or 60 m bands (ratio 6) to 10 m"
        )
    if contract.upsampling not in UPSAMPLING_METHODS:
        raise ModelError(
            f"{source}: unknown upsampling method {contract.upsampling!r} (known: {', '.join(UPSAMPLING_METHODS)})"
        )
    for band in contract.input_bands:
        if band not in GSD or GSD[band] not in (10, 20, 60):
            raise ModelError(f"{source}: input band {band!r} is not a Sentinel-2 10 m, 20 m or 60 m band")


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """An onnxruntime session on one provider with its checked :class:`ModelContract`.

    Attributes
    ----------
    path : Path
    session : onnxruntime.InferenceSession
    contract : ModelContract
    provider : str
        Short name of the provider that runs the session (``"cpu"``, ``"cuda"``...).
    """

    path: Path
    session: Any
    contract: ModelContract
    provider: str

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on a batch.

        Parameters
        ----------
        batch : (N, H, W, C_in) float32 ndarray
            Normalised input (DN / ``contract.scale``), ``contract.input_bands`` order.

        Returns
        -------
        (N, H, W, C_out) float32 ndarray
            Normalised output, ``contract.output_bands`` order.
        """
        nchw = self.contract.layout == "NCHW"
        feed = np.ascontiguousarray(batch.transpose(0, 3, 1, 2) if nchw else batch, dtype=np.float32)
        (out,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: feed})
        expected = (
            (batch.shape[0], self.contract.channels_out, *batch.shape[1:3])
            if nchw
            else ((*batch.shape[:3], self.contract.channels_out))
        )
        if out.shape != expected:
            raise ModelError(
                f"{self.path}: output shape {out.shape} for input {feed.shape}, expected {expected}; "
                "the model does not keep the input's height and width"
            )
        return out.transpose(0, 2, 3, 1) if nchw else out


def _read_contract(session, source: object) -> ModelContract:
    metadata: Mapping[str, str] = session.get_modelmeta().custom_metadata_map
    return ModelContract.from_metadata(metadata, source=source)


def load_model(
    model_path: Path,
    *,
    provider: str = "auto",
    threads: int | None = None,
    **session_options: Any,
) -> LoadedModel:
    """Open an ssc-edge ONNX model on an execution provider and check it.

    Parameters
    ----------
    model_path : Path
        ONNX file exported by ``ssc-edge fit-and-export`` (or anything keeping the contract).
    provider : str
        ``"auto"`` or a short provider name, see :mod:`ssc_edge.runtime.providers`.
    threads : int, optional
        CPU intra-op threads.
    **session_options
        Passed to :func:`~ssc_edge.runtime.providers.make_session` (``fp16``, ``cache_dir``,
        ``input_shape``, ``dimension_names``, ``optimization``).

    Raises
    ------
    ModelError
        Missing, corrupt or non-ONNX file; no ssc-edge metadata; graph inconsistent with it.
    ProviderError
        Provider unknown, unavailable, or not really used by the session.
    """
    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file" if not path.exists() else f"{path}: not a file")
    if path.stat().st_size == 0:
        raise ModelError(f"{path}: model file is empty")
    session, name = make_session(path, provider=provider, threads=threads, **session_options)
    contract = _read_contract(session, path)
    check_contract(session, contract, source=path)
    logger.debug(
        "%s: halo %d px, scale %g, layout %s, on %s", path, contract.halo, contract.scale, contract.layout, name
    )
    return LoadedModel(path=path, session=session, contract=contract, provider=name)
