"""The scene window by window: exact window pairs, bounded patch samples, no-data, bit-identical small fits."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_edge import wald
from ssc_edge.errors import SceneError
from ssc_edge.io import read_scene
from ssc_edge.scene import Scene
from ssc_edge.tiling import Tile
from ssc_edge.train.fit import FitConfig, extract_patches, training_data
from ssc_edge.train.windows import sample_patches, scene_source, training_grid, window_pair


@pytest.fixture(scope="module")
def coastal(shared_data) -> Scene:
    return read_scene(shared_data / "CoastalA_cell.mat")  # 408 x 408 at 10 m, no reference


@pytest.mark.parametrize("degradation", ["bicubic", "mtf"])
@pytest.mark.parametrize("levels", [1, 2])
def test_window_pair_equals_the_crop_of_the_whole_image_pair(coastal, degradation, levels):
    config = FitConfig(degradation=degradation)
    whole = wald.training_pair(coastal, degradation=degradation, upsampling="bicubic", levels=levels)
    h, w = training_grid(coastal.shape, levels)
    assert whole.inputs.shape[:2] == (h, w)
    regions = [
        Tile(0, 0, 40, 40),
        Tile(17, 23, 31, 45),
        Tile(h - 33, w - 21, 33, 21),
        Tile(0, 0, h, w),
        Tile(5, 0, 9, w),
    ]
    for region in regions:
        got = window_pair(scene_source(coastal), region, config, levels=levels)
        np.testing.assert_array_equal(got.inputs, whole.inputs[region.slices])  # bit for bit
        np.testing.assert_array_equal(got.target, whole.target[region.slices])


@pytest.mark.parametrize("name", ["reykjavik_cell_RR.mat", "coastalA_cell_RR.mat", "CoastalA_cell.mat"])
def test_all_patches_under_the_budget_equal_the_whole_image_patches(shared_data, name):
    scene = read_scene(shared_data / name)
    config = FitConfig(patch_budget=1000)  # the full Coastal scene has 576 patches, over the default 512
    inputs, target = training_data(scene, config)
    drawn = sample_patches(scene_source(scene), config, window=48)  # many windows
    np.testing.assert_array_equal(drawn.inputs, extract_patches(inputs, size=16, stride=8))
    np.testing.assert_array_equal(drawn.target, extract_patches(target, size=16, stride=8))
    assert drawn.scale == float(target.max())
    assert drawn.candidates == drawn.origins == len(drawn.inputs) and drawn.windows == drawn.windows_read > 1
    if "RR" in name:  # the RR scenes stay under the default budget: their fit is unchanged
        assert len(drawn.inputs) <= FitConfig().patch_budget


def test_the_sample_does_not_depend_on_the_window_size(coastal):
    config = FitConfig(patch_budget=100, seed=4)
    samples = [sample_patches(scene_source(coastal), config, window=w) for w in (24, 64, 512)]
    assert len(samples[0].inputs) == 100 and samples[0].candidates == 576
    for other in samples[1:]:
        np.testing.assert_array_equal(other.origins_drawn, samples[0].origins_drawn)
        np.testing.assert_array_equal(other.inputs, samples[0].inputs)
    # the drawn patches are those patches of the whole-image pair
    inputs, _ = training_data(coastal, config)
    r, c = samples[0].origins_drawn[7]
    np.testing.assert_array_equal(samples[0].inputs[7], inputs[r : r + 16, c : c + 16])
    other_seed = sample_patches(scene_source(coastal), FitConfig(patch_budget=100, seed=5))
    assert not np.array_equal(other_seed.origins_drawn, samples[0].origins_drawn)


def _with_wedge(scene: Scene) -> Scene:
    """The scene with a no-data wedge (0 DN in every band) below a diagonal, as on an edge-of-swath tile."""
    bands = {}
    for band, array in scene.bands.items():
        h, w = array.shape
        rows, cols = np.mgrid[0:h, 0:w]
        bands[band] = np.where(rows / h > 0.3 + cols / w, 0.0, array)
    return Scene(bands=bands, source=scene.source)


def test_patches_touching_no_data_are_never_drawn(coastal):
    scene = _with_wedge(coastal)
    zero = np.zeros(scene.shape, bool)
    for band in ("B02", "B03", "B04", "B08"):
        zero |= scene.bands[band] == 0
    drawn = sample_patches(scene_source(scene), FitConfig(patch_budget=10_000), window=64)
    assert 0 < drawn.candidates < drawn.origins
    for r, c in drawn.origins_drawn:  # training-grid origin -> 10 m pixels (2x), patch of 32 px
        assert not zero[2 * r : 2 * r + 32, 2 * c : 2 * c + 32].any()
    assert np.all(drawn.inputs != 0) and np.all(drawn.target != 0)
    # and near the wedge: patches just clear of it are drawn
    near = [(r, c) for r, c in drawn.origins_drawn if zero[min(2 * r + 64, 407), 2 * c]]
    assert near


def test_a_scene_without_one_clean_patch_is_refused(coastal):
    bands = dict(coastal.bands)
    grid = np.ones(coastal.shape, np.float32)
    grid[::24, ::24] = 0  # a zero every 24 px: every 32 px patch touches one
    bands["B02"] = coastal.bands["B02"] * grid
    scene = Scene(bands=bands)
    with pytest.raises(SceneError, match="no 16x16 training patch free of no-data"):
        sample_patches(scene_source(scene), FitConfig())


def test_too_small_scene_names_the_minimum(coastal):
    small = Scene(bands={b: a[:16, :16] if a.shape[0] == 408 else a[:8, :8] for b, a in coastal.bands.items()})
    with pytest.raises(SceneError, match="needs at least 32x32 px"):
        sample_patches(scene_source(small), FitConfig())


@pytest.mark.parametrize("degradation", ["auto", "mtf"])
def test_patches_of_later_windows_built_one_by_one_equal_the_whole_image_patches(coastal, degradation):
    # a small budget over many windows: after the first windows only a few patches enter each one, and
    # their pairs are built patch by patch (each with its margin) instead of over the whole window
    config = FitConfig(patch_budget=12, degradation=degradation)
    drawn = sample_patches(scene_source(coastal), config, window=40)
    assert len(drawn.inputs) == 12 and drawn.windows > 6
    inputs, target = training_data(coastal, config)
    for k, (r, c) in enumerate(drawn.origins_drawn):
        np.testing.assert_array_equal(drawn.inputs[k], inputs[r : r + 16, c : c + 16])  # bit for bit
        np.testing.assert_array_equal(drawn.target[k], target[r : r + 16, c : c + 16])
    assert drawn.scale == float(target.max())
