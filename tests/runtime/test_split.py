"""One scene in row bands: the bands cover the plan exactly, and the stitched result is bit-exact."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

from ssc_edge.errors import OptionError, SceneError
from ssc_edge.nodata import fill_margin
from ssc_edge.runtime import Sharpener
from ssc_edge.runtime.split import row_band_inputs, sharpen_in_row_bands, sharpen_row_band
from ssc_edge.tiling import plan_tiles, split_row_bands, stitch_row_bands

from ._models import write_model
from .conftest import random_scene
from .test_sharpen import _whole_image_reference

SHAPES = [(11, 11), (64, 40), (100, 37), (513, 64)]


@pytest.mark.parametrize(("shape", "tile", "count"), list(itertools.product(SHAPES, [11, 23], [1, 2, 3, 9])))
def test_row_bands_hold_the_plan_once_and_their_cores_abut(shape, tile, count):
    halo = 5
    plan = plan_tiles(shape, tile=tile, halo=halo)
    bands = split_row_bands(plan, count)
    tile_rows = len({p.window.row for p in plan})
    assert len(bands) == min(count, tile_rows)
    assert [t for band in bands for t in band.tiles] == list(plan)
    rows_per_band = [len({t.window.row for t in band.tiles}) for band in bands]
    assert max(rows_per_band) - min(rows_per_band) <= 1 and rows_per_band == sorted(rows_per_band, reverse=True)
    covered = 0
    for band in bands:
        assert band.core.row == covered and band.core.col == 0 and band.core.width == shape[1]
        covered += band.core.height
        for window, core in band.tiles:
            assert band.window.row <= window.row and window.row + window.height <= band.window.row + band.window.height
            assert band.core.row <= core.row and core.row + core.height <= band.core.row + band.core.height
        if band.core.row > 0:  # the exact halo above an inner band edge, none at the scene's top edge
            assert band.core.row - band.window.row >= halo
        else:
            assert band.window.row == 0
    assert covered == shape[0]


def test_split_row_bands_refusals():
    plan = plan_tiles((40, 40), tile=16, halo=2)
    with pytest.raises(OptionError, match=r"row bands must be a positive integer, got 0"):
        split_row_bands(plan, 0)
    with pytest.raises(OptionError, match=r"row bands must be a positive integer, got 1\.5"):
        split_row_bands(plan, 1.5)
    with pytest.raises(OptionError, match=r"cannot split an empty tile plan"):
        split_row_bands((), 2)


def test_stitching_band_crops_gives_back_the_image():
    rng = np.random.default_rng(0)
    image = rng.random((45, 31, 3)).astype(np.float32)
    bands = split_row_bands(plan_tiles(image.shape[:2], tile=14, halo=4), 3)
    assert len(bands) == 3
    assert np.array_equal(stitch_row_bands([image[b.core.slices] for b in bands], bands, image.shape[:2]), image)
    with pytest.raises(OptionError, match=r"does not match its band's core"):
        stitch_row_bands([image[:2]] * 3, bands, image.shape[:2])
    with pytest.raises(OptionError, match=r"row band starting at row \d+ does not follow the band ending at 0"):
        stitch_row_bands([image[b.core.slices] for b in bands[1:]], bands[1:], image.shape[:2])
    with pytest.raises(OptionError, match=r"the row bands cover \d+ of 45 rows"):
        stitch_row_bands([image[b.core.slices] for b in bands[:2]], bands[:2], image.shape[:2])


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize(("tile", "count", "batch"), [(16, 2, 1), (16, 3, 3), (23, 4, 1), (11, 9, 2), (64, 2, 1)])
def test_split_scene_equals_whole_image_bit_for_bit(layout, tile, count, batch, nhwc_model, nchw_model):
    """Each band on its own sharpener (another session, as on another worker), the bands pickled like Ray's."""
    model = nhwc_model if layout == "NHWC" else nchw_model
    scene = random_scene(62, 46, seed=3)
    workers = [Sharpener(model, provider="cpu", tile=tile, batch=batch, threads=1) for _ in range(2)]

    def run(parts):
        return [sharpen_row_band(workers[k % 2], pickle.loads(pickle.dumps(p))) for k, p in enumerate(parts)]

    split = sharpen_in_row_bands(scene, workers[0].contract, count=count, tile=tile, run=run)
    assert split.dtype == np.float32
    assert np.array_equal(split, _whole_image_reference(model, scene, layout=layout))
    assert np.array_equal(split, Sharpener(model, provider="cpu", tile=tile).sharpen(scene))


def test_split_with_spline_upsampling_is_exact(model_dir):
    """The cubic B-spline reads 32 coarse pixels of margin around each band."""
    model = write_model(model_dir / "spline.onnx", blocks=2, width=8, upsampling="spline", seed=4)
    scene = random_scene(160, 48, seed=6)
    sharpener = Sharpener(model, provider="cpu", tile=24)
    split = sharpen_in_row_bands(scene, sharpener.contract, count=5, tile=24,
                                 run=lambda parts: [sharpen_row_band(sharpener, p) for p in parts])  # fmt: skip
    assert np.array_equal(split, sharpener.sharpen(scene))


def test_band_crops_hold_only_the_rows_their_windows_read(nhwc_model):
    scene = random_scene(96, 40, seed=7)
    contract = Sharpener(nhwc_model, provider="cpu").contract
    parts = row_band_inputs(scene.bands, scene.shape, contract, count=3, tile=16)
    assert len(parts) == 3
    fine_fill, coarse_fill = fill_margin(5), fill_margin(3 + 2 + 1)  # no-data fill margins of halo 5 (9, 10 rows)
    for part in parts:
        first, stop = part.band.window.row, part.band.window.row + part.band.window.height
        assert part.fine_row == max(first - fine_fill, 0)
        assert part.bands["B02"].shape == (min(stop + fine_fill, 96) - part.fine_row, 40)
        # 20 m rows: the band's rows halved, plus the bicubic margin of 2 and the fill margin (clipped at the edges)
        assert part.coarse_row == max(first // 2 - 2 - coarse_fill, 0)
        assert part.bands["B05"].shape[0] <= -(-stop // 2) - first // 2 + 4 + 2 * coarse_fill
        assert part.bands["B05"].shape[0] < 48


def test_band_planned_with_another_tile_is_refused(nhwc_model):
    scene = random_scene(96, 40, seed=7)
    contract = Sharpener(nhwc_model, provider="cpu").contract
    part = row_band_inputs(scene.bands, scene.shape, contract, count=3, tile=16)[1]
    other = Sharpener(nhwc_model, provider="cpu", tile=30)
    other_part = row_band_inputs(scene.bands, scene.shape, contract, count=3, tile=30)[1]
    mixed = type(part)(other_part.band, part.shape, part.fine_row, part.coarse_row, part.bands)
    with pytest.raises(SceneError, match=r"row band \d+\.\.\d+ holds rows \d+\.\.\d+ of B\w+, not .*tile size"):
        sharpen_row_band(other, mixed)


def test_split_checks_the_scene_size_first(nhwc_model):
    contract = Sharpener(nhwc_model, provider="cpu").contract
    never = lambda parts: pytest.fail("nothing may run")
    with pytest.raises(SceneError, match=r"random of 10x10 px is smaller than the model's receptive field"):
        sharpen_in_row_bands(random_scene(10, 10), contract, count=2, tile=16, run=never)
