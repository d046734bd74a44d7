"""Choose the precision a model runs in (``--precision auto``), and the quality gate behind the choice.

``fp32`` runs the fp32 model as it is; ``bf16`` runs it in the provider's reduced-precision mode (OpenVINO's
bf16 hint on a CPU with ``amx_bf16`` or ``avx512_bf16``, TensorRT's fp16 engine on a GPU); ``fp16`` and
``int8`` are models made by ``ssc-edge optimize``, which carry their own loss. ``auto`` takes bf16 where it is
native and this model's bf16 loss is within :data:`GATE_DB`, else fp32 (an fp16/int8 model runs in its own
precision); :func:`choose` says why.

The loss is ``mean SRE(fp32) - mean SRE(reduced)`` in dB (:func:`ssc_edge.metrics.signal_to_reconstruction_error`,
mean over the bands), both tiled by :class:`~ssc_edge.runtime.Sharpener` as production runs them (fp32 on
onnxruntime's CPU provider), on the central :data:`GATE_SIZE` pixels of a held-out pair: measured at export
and stored in the metadata under :data:`~ssc_edge.runtime.session.GATE_KEY`
(:func:`ssc_edge.runtime.sharpen.gate_metadata`), else at the first ``infer`` on the Wald pair one scale down of
the scene being sharpened and cached in ``$XDG_CACHE_HOME/ssc-edge/precision/`` by model sha256, precision,
backend and hardware (:func:`find_verdict`). The measurement is handed in (:data:`GateMeasure`), so the
precision is chosen before the sharpener that runs in it is built.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import wald
from ..contract import check_scene_size
from ..errors import OptionError, ProviderError, SscEdgeError
from ..scene import Scene
from .hardware import RECORDED_FLAGS, cpu_name, detected_flags, native_bf16
from .openvino_backend import INSTALL_HINT, openvino_available, openvino_version
from .providers import _cache_root, available_providers

if TYPE_CHECKING:
    from .session import ModelFile

__all__ = [
    "PRECISIONS",
    "GATE_DB",
    "GATE_SIZE",
    "Choice",
    "Verdict",
    "GateMeasure",
    "hardware_key",
    "bf16_provider",
    "choose",
    "gate_loss",
    "central_crop",
    "wald_gate_scene",
    "wald_gate_pair",
    "find_verdict",
    "openvino_runs",
]

logger = logging.getLogger(__name__)

#: What ``--precision`` accepts.
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
#: Largest mean-SRE loss ``auto`` accepts, dB (the gate of ``ssc-edge optimize``).
GATE_DB = 0.1
#: Side of the central crop the gate is measured on, fine-grid pixels (the Wald pair is half of it).
GATE_SIZE = 1024
#: ``measure(scene, reference) -> loss_db``: the loss of one reduced precision on a Wald pair, dB, measured
#: by the caller with sessions it keeps (:func:`ssc_edge.runtime.sharpen.choose_precision`).
GateMeasure = Callable[[Scene, np.ndarray], float]


def hardware_key(provider: str) -> str:
    """What a cached gate verdict depends on besides the model: CPU, its bf16 flags, the backend version."""
    recorded = "+".join(f for f in RECORDED_FLAGS if f in detected_flags())
    backend = f"openvino {openvino_version()}" if provider == "openvino" else provider
    return f"{cpu_name()} [{recorded}] {backend}"


def bf16_provider(provider: str, available: Iterable[str], *, openvino: bool, flags: Iterable[str]) -> tuple[str, str]:
    """Where bf16 would run: ``(provider, "")``, or ``("", why not)``.

    ``provider`` is what the user asked for (``"auto"`` or a short name), ``available`` onnxruntime's available
    providers (short names), ``openvino`` whether OpenVINO can run (either way), ``flags`` the CPU's flags.
    """
    available = set(available)
    if provider in ("auto", "tensorrt") and "tensorrt" in available:
        return "tensorrt", ""
    if provider not in ("auto", "openvino"):
        return "", f"{provider} has no reduced-precision mode for an fp32 model (bf16 runs on openvino or tensorrt)"
    if not native_bf16(flags):
        return "", "this CPU has neither AMX-BF16 nor AVX512-BF16 (bf16 would not be native)"
    if not openvino:
        return "", f"bf16 on the CPU runs in OpenVINO, which is not installed ({INSTALL_HINT})"
    return "openvino", ""


@dataclass(frozen=True)
class Verdict:
    """One measured quality loss of a reduced precision on one model.

    Attributes
    ----------
    loss_db : float
        ``mean SRE(fp32) - mean SRE(reduced)``, dB; positive = the reduced precision is worse.
    source : {"metadata", "cache", "measured", "model"}
        Where it came from (``model``: an fp16/int8 model's own ``quality_loss_db``).
    target : str
        What the SRE was measured against (``reference`` or ``wald-reduced-scale``).
    hardware : str
        :func:`hardware_key` of the machine that measured it.
    """

    loss_db: float
    source: str
    target: str = ""
    hardware: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.loss_db <= GATE_DB)


@dataclass(frozen=True)
class Choice:
    """What :func:`choose` decided: run ``precision`` on ``provider`` because of ``reason``."""

    precision: str
    provider: str
    reason: str
    verdict: Verdict | None = None


def choose(
    requested: str,
    *,
    model_precision: str,
    model_loss_db: float = 0.0,
    provider: str = "auto",
    available: Iterable[str] = ("cpu",),
    openvino: bool = False,
    flags: Iterable[str] = (),
    verdict_for: Callable[[str, str], Verdict | None] = lambda precision, provider: None,
) -> Choice:
    """Resolve ``--precision`` (a pure decision on what this machine and model offer).

    Parameters
    ----------
    requested : {"auto", "fp32", "bf16", "fp16", "int8"}
    model_precision : str
        The model's own precision (``ModelContract.precision``).
    model_loss_db : float
        The model's recorded loss against its fp32 parent (fp16/int8 models), dB.
    provider : str
        ``"auto"`` or a short provider name, as the user gave it.
    available, openvino, flags
        See :func:`bf16_provider`.
    verdict_for : callable
        ``verdict_for(precision, provider)`` -> :class:`Verdict` or None (unknown and not measurable);
        called only when ``auto`` needs it (it may measure).

    Returns
    -------
    Choice
        ``provider`` stays ``"auto"`` unless bf16 needs a particular one.

    Raises
    ------
    OptionError
        Unknown precision.
    ProviderError
        ``bf16`` asked for where it cannot run natively (the message says why).
    """
    if requested not in PRECISIONS:
        raise OptionError(f"unknown precision {requested!r}; choose one of {', '.join(PRECISIONS)}")
    if requested == "bf16":
        where, why = bf16_provider(provider, available, openvino=openvino, flags=flags)
        if not where:
            raise ProviderError(f"cannot run bf16: {why}")
        return Choice("bf16", where, f"asked for; runs on {where}")
    if requested != "auto":
        return Choice(requested, provider, "asked for")
    if model_precision != "fp32":
        reason = f"the model is {model_precision} (optimize measured a loss of {model_loss_db:.3f} dB)"
        return Choice(model_precision, provider, reason, Verdict(model_loss_db, "model"))
    where, why = bf16_provider(provider, available, openvino=openvino, flags=flags)
    if not where:
        return Choice("fp32", provider, why)
    verdict = verdict_for("bf16", where)
    if verdict is None:
        return Choice("fp32", provider, "the bf16 loss of this model is unknown and could not be measured here")
    label = {"metadata": "at export", "cache": "cached", "measured": "measured now"}.get(verdict.source, verdict.source)
    if not verdict.passed:
        reason = f"bf16 loses {verdict.loss_db:.3f} dB on this model ({label}), above the {GATE_DB} dB gate"
        return Choice("fp32", provider, reason, verdict)
    native = "TensorRT fp16 engine" if where == "tensorrt" else f"OpenVINO, {native_bf16(flags)}"
    reason = f"bf16 ({native}) loses {verdict.loss_db:.3f} dB on this model ({label}), within the {GATE_DB} dB gate"
    return Choice("bf16", where, reason, verdict)


def central_crop(scene: Scene, size: int = GATE_SIZE) -> Scene:
    """The central ``size`` x ``size`` fine pixels of a scene (at most; a multiple of 4), with its reference."""
    height, width = (min(n, size) // 4 * 4 for n in scene.shape)
    top, left = ((n - m) // 2 // 2 * 2 for n, m in zip(scene.shape, (height, width), strict=True))
    bands = {}
    for band, array in scene.bands.items():
        r = 1 if array.shape[0] == scene.shape[0] else 2
        bands[band] = array[top // r : (top + height) // r, left // r : (left + width) // r]
    reference = None if scene.reference is None else scene.reference[top : top + height, left : left + width]
    return Scene(bands=bands, fine_pixel_size=scene.fine_pixel_size, reference=reference, name=scene.name)


def wald_gate_scene(scene: Scene, contract, *, size: int = GATE_SIZE) -> Scene:
    """The Wald pair one scale down of the central crop, as a scene whose reference is the observed 20 m bands.

    Degraded as the model's own training pair was (:func:`training_pair_model`); a 60 m model's pair is
    :func:`wald_gate_pair`'s.
    """
    degradation, model = training_pair_model(contract)
    no_reference = Scene(bands=dict(scene.bands), fine_pixel_size=scene.fine_pixel_size, name=scene.name)
    crop = central_crop(no_reference, 2 * size)
    pair = wald.reduced_resolution_scene(crop, degradation=degradation, model=model)
    return Scene(bands=dict(pair.bands), reference=pair.reference, fine_pixel_size=pair.fine_pixel_size,
                 name=f"{scene.name} (Wald pair)")  # fmt: skip


def training_pair_model(contract, *, ratio: int = 2) -> tuple[str, Any]:
    """The degradation method and estimated pair model (None: none; the method is then used) of a model's own
    training pair (:func:`ssc_edge.quality.training_degradation`): a :class:`~ssc_edge.wald.PairModel` for
    ``ratio`` 2, a :class:`~ssc_edge.bandset.RatioPairModel` for 6."""
    from ..quality import training_degradation

    degradation, found = training_degradation(contract.training, getattr(contract, "registration", None))
    if ratio == 2:
        return degradation, wald.PairModel.from_dict(found) if found and "coarse" in found else None
    from ..bandset import RatioPairModel

    return degradation, RatioPairModel.from_dict(found) if found and "kernels" in found else None


def wald_gate_pair(scene: Scene, contract, *, size: int = GATE_SIZE) -> tuple[Scene, np.ndarray]:
    """The scene the gate sharpens and the reference it scores against, for a model of any ratio.

    A 20 m model: :func:`wald_gate_scene` and its reference (the observed 20 m bands). A 60 m model
    (``contract.ratio`` 6): the central ``2 size`` px read with the 60 m bands, degraded once by 6 as its
    own training pair was (:func:`ssc_edge.bandset.ratio_reduced_scene`), and the observed B01/B09.
    """
    if getattr(contract, "ratio", 2) == 2:
        pair = wald_gate_scene(scene, contract, size=size)
        return pair, pair.reference
    from ..bandset import ratio_reduced_scene
    from ..io.sources import central_scene

    degradation, model = training_pair_model(contract, ratio=6)
    crop = central_scene(scene, 2 * size, with_60m=True)
    return ratio_reduced_scene(crop, contract.output_bands, degradation=degradation, model=model)


def gate_loss(reference_run, candidate_run, scene: Scene, reference: np.ndarray | None = None) -> float:
    """``mean SRE(reference) - mean SRE(candidate)`` against ``reference`` (default ``scene.reference``), dB.

    Parameters
    ----------
    reference_run, candidate_run : callable
        ``run(scene) -> (H, W, C_out)`` DN (``Sharpener.sharpen``).
    scene : Scene
        With a reference, unless ``reference`` is given.
    reference : (H, W, C_out) ndarray, optional
        The model's output bands as they should be (a 60 m model's B01/B09: :func:`wald_gate_pair`).
    """
    from ..metrics import signal_to_reconstruction_error

    reference = scene.reference if reference is None else reference
    if reference is None:
        raise OptionError(f"{scene.name}: the gate needs a scene with a reference (use wald_gate_pair)")
    scores = [
        float(np.mean(signal_to_reconstruction_error(reference, run(scene)))) for run in (reference_run, candidate_run)
    ]
    return scores[0] - scores[1]


def _cache_file(model_sha256: str, precision: str, provider: str, hardware: str) -> Path:
    root = _cache_root() / "precision"
    machine = hashlib.sha256(hardware.encode()).hexdigest()[:12]
    return root / f"{model_sha256[:32]}-{precision}-{provider}-{machine}.json"


def find_verdict(
    model: ModelFile,
    precision: str,
    provider: str,
    *,
    measure: GateMeasure,
    scene: Scene | Callable[[], Scene | None] | None = None,
) -> Verdict | None:
    """The loss of ``precision`` on ``provider`` for this model: metadata, else cache, else measured on ``scene``.

    Parameters
    ----------
    model : ModelFile
        The model read once (its gate metadata, contract and sha256: no file is opened here).
    precision, provider : str
    measure : GateMeasure
        Runs the model in fp32 and in ``precision`` on a Wald pair and returns the loss, dB.
    scene : Scene or callable, optional
        The scene to be sharpened (or a callable returning it, called only when needed): the loss is
        measured on the Wald pair one scale down of its centre (:func:`wald_gate_pair`) and cached.

    Returns
    -------
    Verdict or None
        None when nothing is known and there is no scene, or the scene cannot give a pair.
    """
    key = f"{precision}/{provider}"
    entry = model.gate.get(key)
    if isinstance(entry, dict) and "loss_db" in entry:
        try:
            return Verdict(float(entry["loss_db"]), "metadata", str(entry.get("target", "")),
                           str(entry.get("hardware", "")))  # fmt: skip
        except (TypeError, ValueError):
            logger.warning("%s: unreadable %s gate in the metadata, measuring again", model.path, key)
    hardware = hardware_key(provider)
    cache = _cache_file(model.sha256, precision, provider, hardware)
    if cache.is_file():
        try:
            data = json.loads(cache.read_text()[:65536])
            return Verdict(float(data["loss_db"]), "cache", data.get("target", ""), data.get("hardware", ""))
        except (ValueError, KeyError, TypeError, RecursionError, OSError):
            logger.warning("%s: unreadable gate cache, measuring again", cache)
    value = scene() if callable(scene) else scene
    if value is None:
        return None
    try:  # a scene the model cannot sharpen at all: its own one-line error follows, no gate warning before it
        check_scene_size(value.shape, model.contract, source=value.name)
    except SscEdgeError as exc:
        logger.debug("precision gate not measured: %s", exc)
        return None
    start = time.perf_counter()
    try:  # a centre of nodata, a scene smaller than a Wald pair and the receptive field: unknown, so fp32
        pair, reference = wald_gate_pair(value, model.contract)
        check_scene_size(pair.shape, model.contract, source=pair.name)
        verdict = Verdict(round(measure(pair, reference), 4), "measured", "wald-reduced-scale", hardware)
    except SscEdgeError as exc:
        logger.warning("cannot measure the %s loss on %s: %s", precision, value.name, exc)
        return None
    logger.info("%s on %s loses %.3f dB on the Wald pair of %s (%.1f s); cached in %s", precision, provider,
                verdict.loss_db, value.name, time.perf_counter() - start, cache)  # fmt: skip
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps({**asdict(verdict), "scene": value.name}, indent=1))
        temporary.replace(cache)
    except OSError as exc:  # a read-only home: the verdict still holds for this run
        logger.warning("cannot cache the precision gate in %s (%s)", cache.parent, exc)
    return verdict


def openvino_runs() -> bool:
    """OpenVINO can run here: its own runtime is installed, or onnxruntime has its provider."""
    return openvino_available() or "openvino" in available_providers()
