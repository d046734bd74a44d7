"""Sharpener: tiled result equals whole-image inference bit for bit; input checks; progress."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from ssc_edge.contract import INPUT_NAME
from ssc_edge.errors import OptionError, SceneError
from ssc_edge.runtime import Sharpener
from ssc_edge.wald import model_input

from .conftest import random_scene


def _whole_image_reference(model_path, scene, *, layout: str, scale: float = 10000.0) -> np.ndarray:
    """Independent reference: the whole (H, W, 10) input (wald.model_input) through a plain onnxruntime session."""
    x = model_input(scene.fine(), scene.coarse())[None] / np.float32(scale)
    if layout == "NCHW":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {INPUT_NAME: x})
    y = y.transpose(0, 2, 3, 1) if layout == "NCHW" else y
    return y[0] * np.float32(scale)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_whole_image_run_matches_plain_onnxruntime(layout, nhwc_model, nchw_model):
    model = nhwc_model if layout == "NHWC" else nchw_model
    scene = random_scene(40, 34)
    got = Sharpener(model, provider="cpu").sharpen(scene)
    assert got.dtype == np.float32 and got.shape == (40, 34, 6)
    assert np.array_equal(got, _whole_image_reference(model, scene, layout=layout))


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize(("tile", "batch"), [(11, 1), (11, 4), (16, 1), (23, 3), (30, 2), (64, 1)])
def test_tiled_equals_whole_image_bit_for_bit(layout, tile, batch, nhwc_model, nchw_model):
    """Tiles of 11 (core 1 px), 16, 23, 30 do not divide 62 x 46; 64 covers it whole."""
    model = nhwc_model if layout == "NHWC" else nchw_model
    scene = random_scene(62, 46, seed=3)
    whole = _whole_image_reference(model, scene, layout=layout)
    tiled = Sharpener(model, provider="cpu", tile=tile, batch=batch).sharpen(scene)
    assert np.array_equal(tiled, whole), f"max difference {np.abs(tiled - whole).max()}"


def test_tiled_with_two_threads_is_still_exact(nchw_model):
    scene = random_scene(48, 48, seed=4)
    one = Sharpener(nchw_model, provider="cpu", threads=1, tile=20).sharpen(scene)
    two = Sharpener(nchw_model, provider="cpu", threads=2, tile=48).sharpen(scene)
    assert np.array_equal(one, two)


def test_sharpen_array_equals_sharpen(nhwc_model):
    scene = random_scene(32, 32, seed=5)
    sharpener = Sharpener(nhwc_model, provider="cpu", tile=20)
    assert np.array_equal(sharpener.sharpen_array(scene.fine(), scene.coarse()), sharpener.sharpen(scene))
    assert sharpener.provider == "cpu"
    assert sharpener.contract.halo == 5


def test_progress_is_reported_per_tile(nhwc_model):
    calls = []
    sharpener = Sharpener(nhwc_model, provider="cpu", tile=16, batch=1)
    sharpener.sharpen(random_scene(24, 24), progress=lambda done, total, message="": calls.append((done, total)))
    total = len(sharpener.plan((24, 24)))
    assert total > 1
    assert calls == [(i, total) for i in range(1, total + 1)]


def test_nan_in_input_is_refused(nhwc_model):
    scene = random_scene(24, 24)
    fine = scene.fine()
    fine[3, 4, 1] = np.nan
    with pytest.raises(SceneError, match=r"10 m input has 1 non-finite values \(NaN or inf\)"):
        Sharpener(nhwc_model, provider="cpu").sharpen_array(fine, scene.coarse())
    coarse = scene.coarse()
    coarse[0, 0, 0] = np.inf
    with pytest.raises(SceneError, match="20 m input has 1 non-finite"):
        Sharpener(nhwc_model, provider="cpu").sharpen_array(scene.fine(), coarse)


def test_scene_smaller_than_the_receptive_field_is_refused(nhwc_model):
    scene = random_scene(10, 40)
    with pytest.raises(SceneError, match=r"10x40 px is smaller than the model's receptive field \(2 x halo 5 \+ 1"):
        Sharpener(nhwc_model, provider="cpu").sharpen(scene)


def test_mismatched_arrays_are_refused(nhwc_model):
    sharpener = Sharpener(nhwc_model, provider="cpu")
    with pytest.raises(SceneError, match="not half the 10 m size"):
        sharpener.sharpen_array(np.ones((20, 20, 4)), np.ones((9, 10, 6)))
    with pytest.raises(SceneError, match=r"fine must be \(H, W, 4\)"):
        sharpener.sharpen_array(np.ones((20, 20)), np.ones((10, 10, 6)))


def test_tile_too_small_and_bad_batch_are_option_errors(nhwc_model):
    with pytest.raises(OptionError, match=r"use at least 2 x halo \+ 1 = 11"):
        Sharpener(nhwc_model, provider="cpu", tile=10)
    with pytest.raises(OptionError, match="batch must be a positive integer"):
        Sharpener(nhwc_model, provider="cpu", batch=0)


def test_odd_sized_input_is_refused(nhwc_model):
    with pytest.raises(SceneError, match="not half the 10 m size"):
        Sharpener(nhwc_model, provider="cpu").sharpen_array(np.ones((21, 20, 4)), np.ones((10, 10, 6)))


SHIPPED = Path(__file__).resolve().parents[2] / "models" / "demo.onnx"


@pytest.mark.skipif(not SHIPPED.is_file(), reason="models/demo.onnx is not shipped yet")
def test_shipped_model_tiles_exactly_and_beats_bicubic():
    """The trainer's real export: preprocessing from its metadata must reproduce its training-time input."""
    from ssc_edge.demo import demo_scene
    from ssc_edge.evaluation import bicubic_baseline, evaluate_estimate

    scene = demo_scene(size=128)
    whole = Sharpener(SHIPPED, provider="cpu", tile=512).sharpen(scene)
    assert np.array_equal(Sharpener(SHIPPED, provider="cpu", tile=40, batch=2).sharpen(scene), whole)
    gain = evaluate_estimate(whole, scene).mean_sre - evaluate_estimate(bicubic_baseline(scene), scene).mean_sre
    assert gain > 5.0, gain


def test_static_shape_sessions_give_the_same_result(nhwc_model, monkeypatch):
    """Providers that compile per shape get one fixed-shape session; a short last batch is padded, not reshaped."""
    from ssc_edge.runtime import sharpen as sharpen_module

    scene = random_scene(50, 42, seed=12)
    dynamic = Sharpener(nhwc_model, provider="cpu", tile=20, batch=3).sharpen(scene)
    monkeypatch.setattr(sharpen_module, "STATIC_SHAPE_PROVIDERS", frozenset({"cpu"}))
    sharpener = Sharpener(nhwc_model, provider="cpu", tile=20, batch=3)
    assert len(sharpener.plan(scene.shape)) % 3 != 0  # the last batch is short
    assert np.array_equal(sharpener.sharpen(scene), dynamic)
    height, width = sharpener.plan(scene.shape)[0].window.shape  # (20, 18): 4 x 4 windows cover 50 x 42
    (static,) = [m for m in sharpener.model.sessions if m.input_shape]
    assert static.input_shape == (3, height, width, 10)
    assert static.session.get_inputs()[0].shape == [3, height, width, 10]


@pytest.mark.parametrize("prefetch", [0, 1, 3])
def test_prefetching_io_thread_gives_the_same_result_in_plan_order(prefetch, nhwc_model):
    import threading

    scene = random_scene(62, 46, seed=6)
    whole = _whole_image_reference(nhwc_model, scene, layout="NHWC")
    sharpener = Sharpener(nhwc_model, provider="cpu", tile=16, batch=2, prefetch=prefetch)
    out = np.zeros((62, 46, 6), np.float32)
    callers, cores = set(), []

    def read(band, tile):
        callers.add(threading.get_ident())
        return scene.bands[band][tile.slices]

    def write(core, values):
        callers.add(threading.get_ident())
        cores.append(core)
        out[core.slices] = values

    tiles = sharpener.sharpen_windows((62, 46), read, write)
    assert np.array_equal(out, whole)
    assert cores == [p.core for p in sharpener.plan((62, 46))] and len(cores) == tiles
    assert len(callers) == 1 and (threading.get_ident() in callers) == (prefetch == 0)  # one I/O thread


def test_a_write_error_in_the_io_thread_reaches_the_caller(nhwc_model):
    scene = random_scene(62, 46, seed=6)
    sharpener = Sharpener(nhwc_model, provider="cpu", tile=16, prefetch=2)

    def write(core, values):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        sharpener.sharpen_windows((62, 46), lambda b, t: scene.bands[b][t.slices], write)
