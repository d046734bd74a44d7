"""Tile planning and stitching: exact cover, halo margins, clipped edges, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ssc_edge.errors import OptionError
from ssc_edge.runtime.sharpen import upsampled_window
from ssc_edge.tiling import (
    Tile,
    _axis_spans,
    axis_windows,
    coarse_window,
    plan_tiles,
    stitch,
)
from ssc_edge.wald import upsample

SHAPES = [(1, 1), (11, 11), (64, 64), (100, 37), (37, 100), (513, 512)]
TILES = [11, 16, 23, 64, 512]


@pytest.mark.parametrize(("shape", "tile"), list(itertools.product(SHAPES, TILES)))
def test_cores_cover_the_grid_exactly_once(shape, tile):
    halo = 5
    plan = plan_tiles(shape, tile=tile, halo=halo)
    count = np.zeros(shape, dtype=int)
    window_shapes = set()
    for window, core in plan:
        assert 0 <= window.row and window.row + window.height <= shape[0]
        assert 0 <= window.col and window.col + window.width <= shape[1]
        rows, cols = core.slices
        count[rows, cols] += 1
        window_shapes.add(window.shape)
        # the core keeps `halo` pixels of context on every side that is not a scene edge
        if core.row > 0:
            assert core.row - window.row >= halo
        if core.col > 0:
            assert core.col - window.col >= halo
        if core.row + core.height < shape[0]:
            assert window.row + window.height - (core.row + core.height) >= halo
        if core.col + core.width < shape[1]:
            assert window.col + window.width - (core.col + core.width) >= halo
    assert np.all(count == 1)
    assert len(window_shapes) == 1  # one shape: static-shape providers build one engine
    ((height, width),) = window_shapes
    assert height <= min(tile, shape[0]) and width <= min(tile, shape[1])


def test_plan_is_row_major_and_edges_are_clipped_not_padded():
    plan = plan_tiles((30, 30), tile=16, halo=3)
    assert [p.core.row for p in plan] == sorted(p.core.row for p in plan)
    # 2 windows of 16 px would cover 2 x 16 - 2 x 3 = 26 < 30 px; 3 windows of ceil((30 + 12) / 3) = 14 px do
    assert len(plan) == 9
    assert plan[0].window == Tile(0, 0, 14, 14)
    assert plan[0].core == Tile(0, 0, 11, 11)  # boundary midway in the overlap 8..14: between 11 and 11
    assert plan[-1].window == Tile(16, 16, 14, 14)  # ends at the scene edge, inside it
    assert plan[-1].core.row + plan[-1].core.height == 30


@pytest.mark.parametrize("halo", [0, 1, 3, 6, 9])
def test_axis_plans_use_the_fewest_equal_windows(halo):
    """Exhaustive over lengths and tile sizes: exact cover, halo kept, and no plan with one window fewer exists."""
    for tile in range(2 * halo + 1, 2 * halo + 30):
        for n in range(1, 200):
            spans = _axis_spans(n, tile, halo)
            k, size = axis_windows(n, tile, halo)
            assert len(spans) == k and {stop - start for start, stop, _, _ in spans} == {size}
            assert size <= min(tile, n)
            assert spans[0][2] == 0 and spans[-1][3] == n and spans[0][0] == 0 and spans[-1][1] == n
            for (_, stop, core_start, core_stop), nxt in itertools.zip_longest(spans, spans[1:]):
                assert core_stop > core_start  # no empty core
                if nxt is not None:
                    assert nxt[2] == core_stop  # cores abut
                    assert core_stop <= stop - halo and nxt[2] >= nxt[0] + halo
            if k > 1:  # k - 1 windows of at most `tile` px cannot cover n
                assert (k - 1) * tile - 2 * halo * (k - 2) < n


@pytest.mark.parametrize(("side", "windows", "size", "share"), [(2048, 25, 420, 0.0514), (10980, 484, 511, 0.0483)])
def test_redundant_network_work_is_under_ten_percent_at_the_default_tile(side, windows, size, share):
    plan = plan_tiles((side, side), tile=512, halo=6)
    assert len(plan) == windows and plan[0].window.shape == (size, size)
    redundancy = sum(p.window.height * p.window.width for p in plan) / side**2 - 1  # window pixels beyond the scene's
    assert redundancy == pytest.approx(share, abs=5e-5)
    assert redundancy < 0.10


@pytest.mark.parametrize("tile", [0, 1, 10])
def test_tile_smaller_than_receptive_field_is_refused(tile):
    with pytest.raises(OptionError, match=r"tile size .* too small for the model's halo of 5 px; use at least .* = 11"):
        plan_tiles((64, 64), tile=tile, halo=5)


def test_tile_must_be_an_integer():
    with pytest.raises(OptionError, match="integer"):
        plan_tiles((64, 64), tile=12.5, halo=1)


def test_empty_grid_is_refused():
    with pytest.raises(OptionError, match="empty grid"):
        plan_tiles((0, 10), tile=16, halo=1)


def test_stitching_window_crops_gives_back_the_image():
    rng = np.random.default_rng(0)
    image = rng.random((45, 31, 3)).astype(np.float32)
    plan = plan_tiles(image.shape[:2], tile=14, halo=4)
    outputs = [image[window.slices] for window, _ in plan]
    assert np.array_equal(stitch(outputs, plan, image.shape[:2]), image)


def test_stitch_checks_window_shapes():
    plan = plan_tiles((20, 20), tile=12, halo=2)
    with pytest.raises(OptionError, match="does not match its window"):
        stitch([np.zeros((3, 3, 1))] * len(plan), plan, (20, 20))


def test_coarse_window_adds_the_margin_and_clips():
    assert coarse_window(Tile(10, 11, 8, 9), ratio=2, margin=2, coarse_shape=(50, 50)) == Tile(3, 3, 8, 9)
    assert coarse_window(Tile(0, 0, 8, 8), ratio=2, margin=2, coarse_shape=(5, 5)) == Tile(0, 0, 5, 5)


@pytest.mark.parametrize("window", [Tile(0, 0, 16, 16), Tile(7, 13, 21, 9), Tile(30, 50, 18, 14), Tile(5, 3, 1, 1)])
def test_bicubic_window_upsampling_is_bit_exact(window):
    rng = np.random.default_rng(1)
    coarse = rng.uniform(0, 5000, (24, 32, 2)).astype(np.float32)
    whole = upsample(coarse, method="bicubic").astype(np.float32)

    def read(band, w):
        return coarse[w.slices][..., int(band)]

    got = upsampled_window(read, window, (48, 64), ["0", "1"], method="bicubic")
    assert np.array_equal(got, whole[window.slices])


def test_spline_window_upsampling_agrees_to_float32_rounding():
    rng = np.random.default_rng(2)
    coarse = rng.uniform(0, 5000, (80, 80, 1))
    whole = upsample(coarse, method="spline").astype(np.float32)
    window = Tile(60, 70, 20, 25)
    got = upsampled_window(lambda b, w: coarse[w.slices][..., 0], window, (160, 160), ["x"], method="spline")
    np.testing.assert_allclose(got, whole[window.slices], rtol=1e-6, atol=1e-3)
