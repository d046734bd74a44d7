"""Fitting: patches, protocols, the held-out protocol's blindness to the reference, seeding, bad input."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from ssc_edge.demo import demo_scene
from ssc_edge.errors import OptionError, SceneError
from ssc_edge.scene import Scene
from ssc_edge.train.fit import (
    DEFAULT_EMA,
    FitConfig,
    evaluate_fit,
    extract_patches,
    fit_model,
    fit_sampled,
    minimum_scene_size,
    predict,
    training_data,
)
from ssc_edge.train.model import ModelConfig

TINY = ModelConfig(width=8, skip_width=4)


@pytest.fixture(scope="module")
def scene() -> Scene:
    return demo_scene(size=64, seed=1)


def _weights_equal(a, b) -> bool:
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights(), strict=True))


def test_extract_patches_matches_the_released_code_order():
    image = np.arange(20 * 28 * 2, dtype=np.float32).reshape(20, 28, 2)
    patches = extract_patches(image, size=16, stride=4)
    expected = [image[r : r + 16, c : c + 16] for r in range(0, 5, 4) for c in range(0, 13, 4)]
    assert patches.shape == (2 * 4, 16, 16, 2)
    np.testing.assert_array_equal(patches, np.stack(expected))


def test_reykjavik_sized_training_grid_gives_225_patches():
    assert len(extract_patches(np.zeros((128, 128, 10), np.float32), size=16, stride=8)) == 225


class _NoReference:
    """A scene stand-in (a band source: ``shape`` and ``read``) whose reference cannot be read."""

    def __init__(self, scene: Scene) -> None:
        from ssc_edge.io.sources import BandSource

        self._scene = scene
        self.shape, self.source, self.name = scene.shape, scene.source, scene.name
        self.fine, self.coarse, self.bands = scene.fine, scene.coarse, scene.bands
        self.read = BandSource.from_scene(Scene(bands=scene.bands)).read

    @property
    def reference(self):
        raise AssertionError("the held-out protocol read the reference")


def test_heldout_never_reads_the_reference(scene):
    config = FitConfig(epochs=2, model=TINY, precision="float32")
    inputs, target = training_data(_NoReference(scene), config)  # would raise on any access
    garbage = Scene(bands=scene.bands, reference=np.full((*scene.shape, 6), 7.0, np.float32))
    for other in (garbage, Scene(bands=scene.bands)):
        other_inputs, other_target = training_data(other, config)
        np.testing.assert_array_equal(other_inputs, inputs)
        np.testing.assert_array_equal(other_target, target)
    assert inputs.shape == (32, 32, 10) and target.shape == (32, 32, 6)


def test_heldout_fit_is_identical_with_garbage_or_no_reference(scene):
    config = FitConfig(epochs=2, model=TINY, precision="float32")
    garbage = Scene(bands=scene.bands, reference=np.full((*scene.shape, 6), 7.0, np.float32))
    fits = [fit_model(*training_data(s, config), config) for s in (scene, garbage, Scene(bands=scene.bands))]
    assert fits[0].history == fits[1].history == fits[2].history
    assert _weights_equal(fits[0].model, fits[1].model) and _weights_equal(fits[0].model, fits[2].model)


def test_same_seed_reproduces_and_other_seed_differs(scene):
    config = FitConfig(epochs=3, model=TINY, seed=4, precision="float32")
    inputs, target = training_data(scene, config)
    a, b = fit_model(inputs, target, config), fit_model(inputs, target, config)
    c = fit_model(inputs, target, FitConfig(epochs=3, model=TINY, seed=5, precision="float32"))
    assert a.history == b.history and _weights_equal(a.model, b.model)
    assert a.history != c.history


def test_fit_keeps_the_best_weights_and_reports_progress(scene):
    calls = []
    config = FitConfig(epochs=4, model=TINY, learning_rate=1e-3, ema=0, precision="float32")
    fit = fit_model(*training_data(scene, config), config, progress=lambda d, t, m: calls.append((d, t, m)))
    assert [c[:2] for c in calls] == [(e, 4) for e in range(1, 5)]
    assert calls[-1][2].startswith("loss ")
    assert fit.best_loss == min(fit.history) and fit.history[fit.best_epoch - 1] == fit.best_loss
    assert fit.patches == 9 and fit.scale == pytest.approx(float(training_data(scene, config)[1].max()))


def test_bfloat16_training_exports_a_float32_model(scene):
    config = FitConfig(epochs=1, model=TINY, precision="mixed_bfloat16")
    fit = fit_model(*training_data(scene, config), config)
    assert all(w.dtype == np.float32 for w in fit.model.get_weights())
    assert fit.model.layers[1].compute_dtype == "float32"


def test_augmented_fit_is_reproducible(scene):
    config = FitConfig(epochs=2, model=TINY, augment=True, precision="float32")
    inputs, target = training_data(scene, config)
    a, b = fit_model(inputs, target, config), fit_model(inputs, target, config)
    assert a.history == b.history and _weights_equal(a.model, b.model)
    assert a.history != fit_model(inputs, target, FitConfig(epochs=2, model=TINY, precision="float32")).history


def test_cosine_schedule_changes_the_fit_and_is_reproducible(scene):
    config = FitConfig(epochs=3, model=TINY, lr_schedule="cosine", precision="float32")
    inputs, target = training_data(scene, config)
    a, b = fit_model(inputs, target, config), fit_model(inputs, target, config)
    assert a.history == b.history and _weights_equal(a.model, b.model)
    assert a.history != fit_model(inputs, target, FitConfig(epochs=3, model=TINY, precision="float32")).history


@pytest.fixture(scope="module")
def epoch_fits(scene):
    """``(inputs, target, [plain fits of 1, 2, 3 epochs])``: 9 patches at batch 64, one Adam step per epoch, so the
    per-step momentum of an average is its per-epoch decay. The plain fits (no average) share an averaged fit's
    trajectory (same seed); their losses fall, so each keeps its last epoch."""
    inputs, target = training_data(scene, FitConfig(epochs=1, model=TINY, precision="float32"))
    plain = [fit_model(inputs, target, FitConfig(epochs=k, model=TINY, ema=0, precision="float32")) for k in (1, 2, 3)]
    return inputs, target, plain


def test_ema_keeps_the_moving_average_of_the_epoch_weights(epoch_fits):
    inputs, target, plain = epoch_fits
    assert [fit.best_epoch for fit in plain] == [1, 2, 3]
    w1, w2, w3 = (fit.model.get_weights() for fit in plain)
    decay = 0.8
    averaged = fit_model(inputs, target, FitConfig(epochs=3, model=TINY, ema=decay, precision="float32"))
    expected = [decay * (decay * a + (1 - decay) * b) + (1 - decay) * c for a, b, c in zip(w1, w2, w3, strict=True)]
    for got, want in zip(averaged.model.get_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert averaged.best_epoch == 3 and averaged.history == plain[2].history
    assert not np.allclose(averaged.model.get_weights()[0], w3[0], atol=1e-5)


def test_paper_protocol_keeps_the_epoch_with_the_lowest_whole_image_loss(scene):
    config = FitConfig(epochs=4, model=TINY, protocol="paper", precision="float32", learning_rate=5e-3)
    inputs, target = training_data(scene, config)
    fit = fit_model(inputs, target, config)
    assert fit.config.checkpoint == "image-loss" and len(fit.image_history) == 4
    assert fit.best_epoch == int(np.argmin(fit.image_history)) + 1
    # the kept weights are the ones that scored that loss on the whole pair (as the released code's val_loss)
    mse = np.mean((predict(fit.model, inputs, fit.scale) - target) ** 2) / fit.scale**2
    assert mse == pytest.approx(min(fit.image_history), rel=1e-4)
    assert fit.config.ema == 0  # the released code keeps the best epoch, no average
    assert fit.weights_kept == "image-loss"


def test_heldout_keeps_the_weight_average_by_default(scene):
    config = FitConfig(epochs=2, model=TINY, precision="float32", stage_iterations=0)
    fit = fit_model(*training_data(scene, config), config)
    # 0.98 per epoch of 64-patch steps, the same per step at the default batch of 16: 0.98 ** 4
    assert DEFAULT_EMA == 0.98 and config.batch_size == 16
    assert fit.config.ema == pytest.approx(0.98**4) and fit.best_epoch == 2
    assert fit_model(*training_data(scene, config), replace(config, batch_size=64)).config.ema == 0.98
    assert fit.config.checkpoint == "patch-loss" and fit.image_history == []
    assert fit.weights_kept == "ema 0.922368"
    assert not _weights_equal(fit.model, fit_model(*training_data(scene, config), replace(config, ema=0)).model)


def test_too_small_scene_names_the_minimum_size():
    config = FitConfig(epochs=1, model=TINY, precision="float32")
    assert minimum_scene_size(config) == 32
    with pytest.raises(SceneError, match=r"24x24 px is too small.*at least 32x32 px"):
        training_data(demo_scene(size=24), config)
    training_data(demo_scene(size=32), config)  # exactly one patch


def test_paper_protocol_needs_a_reference(scene):
    config = FitConfig(protocol="paper", model=TINY, precision="float32")
    inputs, target = training_data(scene, config)
    np.testing.assert_array_equal(target, scene.reference)
    assert inputs.shape == (64, 64, 10)
    with pytest.raises(OptionError, match="protocol 'paper' needs an RR scene"):
        training_data(Scene(bands=scene.bands), config)


def test_evaluation_kinds(scene):
    config = FitConfig(epochs=1, model=TINY, precision="float32")
    fit = fit_model(*training_data(scene, config), config)
    evaluation = evaluate_fit(scene, fit)
    assert evaluation.kind == "rr-reference" and not evaluation.training_set_numbers
    no_reference = Scene(bands=scene.bands)
    evaluation = evaluate_fit(no_reference, fit)
    assert evaluation.kind == "one-scale-down" and evaluation.fit_seconds > 0
    assert len(evaluation.model.sre) == 6


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"protocol": "train-on-test"}, "protocol must be one of"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"learning_rate": 0}, "learning_rate must be positive"),
        ({"degradation": "box"}, "degradation must be one of"),
        ({"lr_schedule": "step"}, "lr_schedule must be one of"),
        ({"ema": 1.0}, r"ema must be in \[0, 1\)"),
        ({"checkpoint": "val"}, "checkpoint must be one of"),
        ({"patch_budget": 0}, "patch_budget must be a positive integer"),
    ],
)
def test_bad_fit_options(options, message):
    with pytest.raises(OptionError, match=message):
        FitConfig(**options)


def test_fit_config_round_trip():
    config = FitConfig(epochs=3, model=ModelConfig(blocks=2), precision="float32")
    assert FitConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("name", ["reykjavik_cell_RR.mat", "coastalA_cell_RR.mat"])
def test_rr_scenes_under_the_budget_fit_bit_for_bit_as_on_the_whole_pair(shared_data, name):
    from ssc_edge.io import read_scene

    scene = read_scene(shared_data / name)
    config = FitConfig(epochs=2, model=TINY, precision="float32")
    whole = fit_model(*training_data(scene, config), config)
    sampled = fit_sampled(scene, config)
    assert sampled.patches == whole.patches == sampled.candidates and sampled.scale == whole.scale
    assert sampled.history == whole.history and _weights_equal(sampled.model, whole.model)


def test_a_budget_bounds_the_patches_and_the_steps(scene):
    config = FitConfig(epochs=2, model=TINY, patch_budget=5, batch_size=2, precision="float32")
    fit = fit_sampled(scene, config)
    assert fit.patches == 5 and fit.candidates == 9 and len(fit.history) == 2


def test_windowed_evaluation_equals_whole_image_scoring(scene):
    from ssc_edge import wald
    from ssc_edge.metrics import quality_report
    from ssc_edge.train.fit import _scene_window_pair, score_windows

    config = FitConfig(epochs=1, model=TINY, precision="float32")
    fit = fit_model(*training_data(scene, config), config)
    inputs = wald.full_scale_input(scene)
    bands = ("B05", "B06", "B07", "B8A", "B11", "B12")
    whole = quality_report(scene.reference, predict(fit.model, inputs, fit.scale), band_names=bands)
    whole_bicubic = quality_report(scene.reference, inputs[..., :6], band_names=bands)
    (model,), bicubic, windows, pixels, sampled = score_windows(
        _scene_window_pair(scene, "bicubic"), scene.shape, [fit.model], fit.scale, tile=24
    )
    assert windows > 4 and pixels == 64 * 64 and not sampled
    np.testing.assert_allclose(model.sre, whole.sre, atol=1e-4)
    assert bicubic == whole_bicubic  # the same numbers, stitched from the windows
    # above the pixel cap: a sample of whole windows
    (model,), _, _, pixels, sampled = score_windows(
        _scene_window_pair(scene, "bicubic"), scene.shape, [fit.model], fit.scale, tile=24, pixels=1200
    )
    assert sampled and pixels == 2 * 24 * 24


def test_image_loss_needs_the_whole_pair(scene):
    with pytest.raises(OptionError, match="checkpoint 'image-loss' scores the whole training pair"):
        fit_sampled(scene, FitConfig(epochs=1, model=TINY, checkpoint="image-loss", ema=0, precision="float32"))


def test_evaluation_on_a_scene_with_no_data_scores_clean_windows_only(scene):
    from ssc_edge.train.fit import _scene_window_pair, score_windows

    bands = {b: a.copy() for b, a in scene.bands.items()}
    for array in bands.values():  # no-data in the lower-left corner
        n = array.shape[0]
        array[n * 3 // 4 :, : n // 4] = 0
    wedged = Scene(bands=bands, reference=scene.reference)
    config = FitConfig(epochs=1, model=TINY, precision="float32")
    fit = fit_model(*training_data(scene, config), config)
    (model,), bicubic, _, pixels, sampled = score_windows(
        _scene_window_pair(wedged, "bicubic"), wedged.shape, [fit.model], fit.scale, tile=64
    )
    assert sampled and pixels == 3 * 32 * 32  # the whole image has no-data: three clean 32 px quarters
    assert np.isfinite(model.mean_sre) and bicubic.mean_sre < model.mean_sre + 50
    bands["B05"][:] = bands["B05"] * (np.indices(bands["B05"].shape).sum(axis=0) % 2)  # no-data everywhere
    with pytest.raises(SceneError, match="no window of 32x32 px or more free of no-data"):
        score_windows(
            _scene_window_pair(Scene(bands=bands, reference=scene.reference), "bicubic"),
            scene.shape,
            [fit.model],
            fit.scale,
            tile=64,
        )


def test_spatial_holdout_scores_only_windows_clear_of_the_training_patches():
    """On a scene with far more patches than the budget the report needs no second fit: the model itself is
    scored one scale down on windows whose network input touches none of its training patches."""
    from ssc_edge.train import fit as fit_module
    from ssc_edge.train.model import receptive_halo

    big = Scene(bands=demo_scene(size=384, seed=2).bands)  # no reference: 529 patches one scale down
    config = FitConfig(epochs=1, model=TINY, patch_budget=24, precision="float32")
    fit = fit_sampled(big, config)
    assert fit.patches == 24 and fit.candidates == 529 and fit.origins.shape == (24, 2)
    seen: list = []
    real_score = fit_module.score_windows

    def recording(pair, *args, **kwargs):
        def spy(tile):
            seen.append(tile)
            return pair(tile)

        return real_score(spy, *args, **kwargs)

    fit_module.score_windows = recording
    try:
        evaluation = evaluate_fit(big, fit)
    finally:
        fit_module.score_windows = real_score
    assert evaluation.kind == "spatial-holdout" and evaluation.fit_seconds == 0 and evaluation.patches == 0
    assert evaluation.sampled and evaluation.pixels > 0 and len(seen) > 0
    size, halo = config.patch, receptive_halo(fit.model)
    for tile in seen:  # every window read (the scored block and its halo) is clear of every training patch
        rows, cols = fit.origins[:, 0], fit.origins[:, 1]
        touches = (rows < tile.row + tile.height) & (rows + size > tile.row)
        touches &= (cols < tile.col + tile.width) & (cols + size > tile.col)
        assert not touches.any(), (tile, halo)
    forced = evaluate_fit(big, fit, evaluation="one-scale-down")
    assert forced.kind == "one-scale-down" and forced.fit_seconds > 0 and forced.patches == 24


def test_spatial_holdout_falls_back_when_the_patches_cover_the_scene(scene):
    no_reference = Scene(bands=scene.bands)
    config = FitConfig(
        epochs=1, model=TINY, patch_budget=4, precision="float32"
    )  # 4 of 9 patches: under half, but no clear window
    fit = fit_sampled(no_reference, config)
    assert 2 * fit.patches <= fit.candidates
    assert evaluate_fit(no_reference, fit).kind == "one-scale-down"
    with pytest.raises(SceneError, match="free of no-data \\(0 DN\\) and of training patches"):
        evaluate_fit(no_reference, fit, evaluation="spatial-holdout")
    with pytest.raises(OptionError, match="evaluation must be one of"):
        evaluate_fit(no_reference, fit, evaluation="train-set")


def test_predict_tiled_equals_the_whole_image(scene):
    """Keras on windows with the model's halo (the runtime's tiling) gives the whole-image output: the report's
    full-scale pass uses it to keep its memory set by the window."""
    from ssc_edge import wald
    from ssc_edge.train.fit import predict_tiled

    config = FitConfig(epochs=1, model=TINY, precision="float32")
    fit = fit_model(*training_data(scene, config), config)
    inputs = wald.full_scale_input(scene, upsampling="bicubic")[:, :58]  # 64 x 58: uneven windows
    whole = predict(fit.model, inputs, fit.scale)
    tiled = predict_tiled(fit.model, inputs, fit.scale, tile=20)
    assert tiled.shape == whole.shape
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-4 * float(np.ptp(whole)))


def test_held_out_fit_reports_its_epochs_under_its_own_label(scene):
    """The report's second fit counts its epochs, then its full-resolution stage's steps, on the caller's
    progress, each labelled as the held-out fit's."""
    config = FitConfig(epochs=2, model=TINY, precision="float32", stage_iterations=3)
    fit = fit_model(*training_data(scene, config), config)
    seen = []
    evaluation = evaluate_fit(Scene(bands=scene.bands), fit, progress=lambda d, t, m="": seen.append((d, t, m)))
    assert evaluation.kind == "one-scale-down"
    assert [(d, t) for d, t, _ in seen] == [(1, 2), (2, 2), (1, 3), (2, 3), (3, 3)]
    label = "held-out fit (two scales down, scores the report): "
    assert all(m.startswith(f"{label}reduced-resolution fit: loss ") for _, _, m in seen[:2])
    assert all(m.startswith(f"{label}full-resolution stage: loss ") for _, _, m in seen[2:])


def test_spatial_holdout_of_a_staged_fit_also_scores_the_model_before_the_stage():
    """The report keeps the hold-out score of the fit the stage started from, on the very windows of the staged
    model's score: it equals scoring that fit alone (same seed, same excluded patches), and it differs from the
    staged model's, which the stage changed."""
    from ssc_edge.train.fit import fit_scene

    big = Scene(bands=demo_scene(size=384, seed=2).bands)  # no reference: 529 patches one scale down
    config = FitConfig(epochs=1, model=TINY, patch_budget=24, precision="float32", stage_iterations=3)
    fit = fit_scene(big, config, keep_before_stage=True)
    evaluation = evaluate_fit(big, fit)
    alone = evaluate_fit(big, fit.before_stage)
    assert evaluation.kind == alone.kind == "spatial-holdout"
    assert alone.before_stage is None and evaluation.before_stage is not None
    assert evaluation.before_stage.mean_sre == alone.model.mean_sre
    assert evaluation.pixels == alone.pixels and evaluation.model.mean_sre != alone.model.mean_sre
    assert evaluation.to_dict()["before_stage"] == alone.model.to_dict()


def test_each_protocol_has_its_own_defaults_and_an_option_given_as_none_keeps_them():
    """``fit-and-export`` builds its config through ``FitConfig.for_protocol``: the paper protocol takes the released
    code's 200 epochs at batch 64 and no stage (even when asked for one); heldout takes the dataclass's defaults."""
    assert FitConfig.for_protocol("heldout", epochs=None, batch_size=None, stage_iterations=None) == FitConfig()
    paper = FitConfig.for_protocol("paper", epochs=None, batch_size=None)
    assert (paper.protocol, paper.epochs, paper.batch_size, paper.stage_iterations) == ("paper", 200, 64, 0)
    asked = FitConfig.for_protocol("paper", epochs=5, stage_iterations=30, seed=3)
    assert (asked.epochs, asked.batch_size, asked.stage_iterations, asked.seed) == (5, 64, 0, 3)
    assert FitConfig.for_protocol("heldout", stage_iterations=0).stage_iterations == 0
    with pytest.raises(OptionError, match="protocol must be one of"):
        FitConfig.for_protocol("cheat")


def test_the_weight_average_starts_over_after_ema_start_of_the_epochs(epoch_fits):
    """One Adam step per epoch: restarted at epoch 3 (2/3 of 3 epochs), the average is the weights after epoch 2
    carried one step with Keras' own momentum; without a restart it also holds epoch 1's."""
    inputs, target, plain = epoch_fits
    w1, w2, w3 = (fit.model.get_weights() for fit in plain)
    decay = 0.8
    late = fit_model(inputs, target, FitConfig(epochs=3, model=TINY, ema=decay, ema_start=2 / 3, precision="float32"))
    whole = fit_model(inputs, target, FitConfig(epochs=3, model=TINY, ema=decay, ema_start=0, precision="float32"))
    for got, b, c in zip(late.model.get_weights(), w2, w3, strict=True):
        np.testing.assert_allclose(got, decay * b + (1 - decay) * c, rtol=0, atol=1e-6)
    expected = [decay * (decay * a + (1 - decay) * b) + (1 - decay) * c for a, b, c in zip(w1, w2, w3, strict=True)]
    for got, want in zip(whole.model.get_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert late.history == whole.history == plain[2].history  # the restart changes the average, not the training
    with pytest.raises(OptionError, match=r"ema_start must be in \[0, 1\)"):
        FitConfig(ema_start=1.0)
