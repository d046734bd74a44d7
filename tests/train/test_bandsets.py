"""The 60 m model's fit stays bounded: a central window of a large scene, a budget of patches."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from ssc_edge.bands import COARSE_BANDS, FINE_BANDS, VERY_COARSE_BANDS
from ssc_edge.demo import demo_scene
from ssc_edge.io import read_scene
from ssc_edge.io.sources import open_band_source
from ssc_edge.train.bandsets import _pair, fit_60m, sixty_pair_for, sixty_scene
from ssc_edge.train.fit import FitConfig, extract_patches, fit_model
from ssc_edge.train.model import ModelConfig

TINY = ModelConfig(width=8, skip_width=4)


def test_sixty_scene_reads_only_the_central_window_with_the_60m_phase(shared_data):
    """The window of a band folder is the same slice of every band as the whole-scene reader gives, its origin a
    multiple of 6 (the 60 m grid keeps its phase) and its name the scene's."""
    crop = shared_data / "real" / "l1c_T31TDH_20150726_crop"
    whole = read_scene(crop)
    with open_band_source(crop) as source:
        window = sixty_scene(source, side=72)
    h, w = whole.shape
    assert window.shape == (72, 72) and window.name == whole.name
    r, c = (h - 72) // 12 * 6, (w - 72) // 12 * 6
    for band in FINE_BANDS:
        np.testing.assert_array_equal(window.bands[band], whole.bands[band][r : r + 72, c : c + 72])
    for band in COARSE_BANDS:
        np.testing.assert_array_equal(
            window.bands[band], whole.bands[band][r // 2 : (r + 72) // 2, c // 2 : (c + 72) // 2]
        )
    for band in VERY_COARSE_BANDS:
        np.testing.assert_array_equal(
            window.bands[band], whole.bands[band][r // 6 : (r + 72) // 6, c // 6 : (c + 72) // 6]
        )
    assert sixty_scene(whole) is whole  # a scene under the side is fitted whole, as before


def test_fit_60m_draws_the_budget_and_leaves_small_scenes_unchanged():
    scene = demo_scene(size=576, seed=4)  # ratio-6 training grid 96 px: 121 patches
    config = FitConfig(epochs=1, model=TINY, patch_budget=40, batch_size=8, precision="float32")
    fit = fit_60m(scene, config)
    assert fit.patches == 40 and fit.candidates == 121
    inputs, target = _pair(scene, config, 1, sixty_pair_for(scene, config)[0])
    assert len(extract_patches(target, size=16, stride=8)) == 121
    under = FitConfig(epochs=1, model=TINY, patch_budget=121, batch_size=8, precision="float32")
    a, b = fit_60m(scene, under), fit_model(inputs, target, under)
    assert a.patches == b.patches == 121
    assert all(np.array_equal(u, v) for u, v in zip(a.model.get_weights(), b.model.get_weights(), strict=True))


def test_bands_all_claims_every_output_before_training(tmp_path):
    """Another run writing the 60 m model refuses ``--bands all`` before any fit; nothing is written."""
    from ssc_edge.errors import OutputError
    from ssc_edge.io import output_guard
    from ssc_edge.train.bandsets import fit_and_export_bands, sixty_output_path

    out = tmp_path / "m.onnx"
    config = FitConfig(epochs=1, model=TINY, stage_iterations=0)
    with output_guard([sixty_output_path(out)]), pytest.raises(OutputError, match="another ssc-edge run"):
        fit_and_export_bands(120, out, config, bands="all", write_keras=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    results = fit_and_export_bands(120, out, config, bands="all", write_keras=False)
    assert sorted(results) == ["20m", "60m"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"m{s}" for s in (".onnx", ".json", ".md", "_60m.onnx", "_60m.json", "_60m.md")]
    )
