"""Patch sampling: origin grids, blocks, validity against brute force, the reservoir's exact top-k."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_edge import sampling
from ssc_edge.errors import OptionError


def test_origin_grid_counts_the_released_code_patches():
    assert sampling.origin_grid((128, 128), patch=16, stride=8) == (15, 15)  # Reykjavik: 225 patches
    assert sampling.origin_grid((5490, 5490), patch=16, stride=8) == (685, 685)  # a full tile one scale down
    assert sampling.origin_grid((15, 40), patch=16, stride=8) == (0, 0)


@pytest.mark.parametrize("window", [16, 20, 40, 100, 1000])
def test_blocks_hold_every_origin_once_and_their_regions_cover_the_grid(window):
    shape, patch, stride = (101, 77), 16, 8
    blocks = list(sampling.origin_blocks(shape, patch=patch, stride=stride, window=window))
    n_rows, n_cols = sampling.origin_grid(shape, patch=patch, stride=stride)
    seen = np.zeros((n_rows, n_cols), int)
    cover = np.zeros(shape, int)
    for block in blocks:
        seen[slice(*block.rows), slice(*block.cols)] += 1
        r, c, h, w = block.region
        cover[r : r + h, c : c + w] += 1
        for i in range(*block.rows):  # every patch of the block lies in its region
            assert r <= i * stride and i * stride + patch <= r + h
    assert np.all(seen == 1) and np.all(cover >= 1)


def test_valid_origins_equal_brute_force():
    rng = np.random.default_rng(0)
    nodata = rng.random((60, 50)) < 0.01
    rows, cols = np.arange(0, 60 - 16 + 1, 8), np.arange(0, 50 - 16 + 1, 8)
    for margin in (0, 3):
        got = sampling.valid_origins(nodata, rows, cols, patch=16, margin=margin)
        want = np.array(
            [
                [
                    not nodata[max(r - margin, 0) : r + 16 + margin, max(c - margin, 0) : c + 16 + margin].any()
                    for c in cols
                ]
                for r in rows
            ]
        )
        np.testing.assert_array_equal(got, want)
        assert 0 < got.sum() < got.size


def test_block_any():
    mask = np.zeros((5, 7), bool)
    mask[4, 6] = True
    out = sampling.block_any(mask, 2)
    assert out.shape == (3, 4) and out.sum() == 1 and out[2, 3]


def test_reservoir_keeps_the_smallest_keys_in_origin_order():
    keys = sampling.patch_keys(1000, seed=3)
    valid = np.flatnonzero(np.random.default_rng(1).random(1000) < 0.7)
    reservoir = sampling.PatchReservoir(keys, 50)
    for chunk in np.array_split(valid, 13):  # windows of different sizes
        chosen = reservoir.candidates(chunk)
        reservoir.add(chosen, chosen[:, None].astype(np.float32))
    index, (values,) = reservoir.result()
    expected = np.sort(valid[np.argsort(keys[valid])[:50]])
    np.testing.assert_array_equal(index, expected)
    np.testing.assert_array_equal(values[:, 0], expected)  # the pixels travel with their index
    assert reservoir.offered == len(valid)


def test_reservoir_keeps_everything_under_the_budget():
    keys = sampling.patch_keys(10, seed=0)
    reservoir = sampling.PatchReservoir(keys, 100)
    reservoir.add(reservoir.candidates(np.array([7, 2, 5])), np.zeros((3, 1)))
    assert list(reservoir.result()[0]) == [2, 5, 7]


def test_bad_budget_and_window():
    with pytest.raises(OptionError, match="patch budget must be a positive integer"):
        sampling.PatchReservoir(np.zeros(3), 0)
    with pytest.raises(OptionError, match="window must be a positive"):
        list(sampling.origin_blocks((40, 40), patch=16, stride=8, window=0))
