"""MATLAB scene reader: the three real files, both layouts, v5 and v7.3 (HDF5), and its errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy import io as sio

from ssc_edge.bands import ALL_BANDS, COARSE_BANDS, FINE_BANDS
from ssc_edge.errors import SceneError, SceneReadError
from ssc_edge.io import read_scene
from ssc_edge.io.mat import read_mat_arrays, read_mat_scene

NEEDED = set(FINE_BANDS + COARSE_BANDS)


def _cells(height: int = 16, width: int = 12, seed: int = 0) -> list[np.ndarray]:
    """Yim cells in ALL_BANDS order: 10 m (height, width), 20 m half, 60 m a sixth."""
    rng = np.random.default_rng(seed)
    sizes = {10: (height, width), 20: (height // 2, width // 2), 60: (height // 6, width // 6)}
    gsd = (60, 10, 10, 10, 20, 20, 20, 10, 20, 60, 20, 20)
    return [rng.uniform(100, 5000, sizes[g]).astype(np.uint16) for g in gsd]


def _save_cells(path, cells, **extra) -> None:
    yim = np.empty((1, len(cells)), dtype=object)
    for i, cell in enumerate(cells):
        yim[0, i] = cell
    sio.savemat(path, {"Yim": yim, **extra})


def _save_v73(path, variables: dict[str, np.ndarray]) -> None:
    """A minimal MATLAB v7.3 file: HDF5 with a 512-byte user block, arrays stored column-major."""
    with h5py.File(path, "w", userblock_size=512) as h5:
        for name, value in variables.items():
            h5.create_dataset(name, data=np.asarray(value).T)
            h5[name].attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, synthetic test file")


def test_reykjavik_v5(shared_data):
    scene = read_scene(shared_data / "reykjavik_cell_RR.mat")
    assert scene.shape == (256, 256)
    assert set(scene.bands) == NEEDED  # B01 and B09 are all-zero placeholders: dropped
    assert scene.reference is not None and scene.reference.shape == (256, 256, 6)
    assert scene.fine_pixel_size == 20.0 and scene.gsd("B05") == 40.0
    assert scene.bands["B05"].shape == (128, 128)
    assert scene.georef is None


def test_coastal_rr_v73(shared_data):
    scene = read_scene(shared_data / "coastalA_cell_RR.mat")
    assert scene.shape == (204, 204)
    assert set(scene.bands) == set(ALL_BANDS)
    assert scene.bands["B01"].shape == (34, 34)
    assert scene.reference is not None and scene.reference.shape == (204, 204, 6)
    assert scene.fine_pixel_size == 20.0


def test_coastal_full_resolution_has_no_reference(shared_data):
    scene = read_scene(shared_data / "CoastalA_cell.mat")
    assert scene.shape == (408, 408)
    assert set(scene.bands) == set(ALL_BANDS)
    assert scene.reference is None and scene.fine_pixel_size == 10.0


def test_v73_transpose_matches_readme_fact(shared_data):
    """README: a 2x2 mean of the Coastal reference correlates 0.9997 with the coarse B5 cell; 0.04 transposed."""
    scene = read_scene(shared_data / "coastalA_cell_RR.mat")
    ref_b5 = scene.reference[..., COARSE_BANDS.index("B05")]
    mean = ref_b5.reshape(102, 2, 102, 2).mean(axis=(1, 3))
    coarse = scene.bands["B05"]
    assert np.corrcoef(mean.ravel(), coarse.ravel())[0, 1] > 0.999
    assert abs(np.corrcoef(mean.T.ravel(), coarse.ravel())[0, 1]) < 0.2


def test_rr_coarse_bands_agree_with_reference(shared_data):
    """In both RR files the 40 m cells are a degraded copy of the 20 m reference (same orientation)."""
    for name in ("reykjavik_cell_RR.mat", "coastalA_cell_RR.mat"):
        scene = read_scene(shared_data / name)
        h, w = scene.shape
        for i, band in enumerate(COARSE_BANDS):
            mean = scene.reference[..., i].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
            assert np.corrcoef(mean.ravel(), scene.bands[band].ravel())[0, 1] > 0.98, (name, band)


def test_v5_cell_round_trip(tmp_path):
    cells = _cells()
    reference = np.random.default_rng(1).uniform(1, 100, (16, 12, 6))
    _save_cells(tmp_path / "s.mat", cells, Xm_im=reference)
    scene = read_mat_scene(tmp_path / "s.mat")
    for name, cell in zip(ALL_BANDS, cells, strict=True):
        np.testing.assert_array_equal(scene.bands[name], cell.astype(np.float32))
    np.testing.assert_allclose(scene.reference, reference.astype(np.float32))
    assert scene.fine_pixel_size == 20.0


def test_v73_grouped_layout_is_transposed_back(tmp_path):
    """A non-square (bands, H, W) group written column-major by 'MATLAB' comes back as (H, W)."""
    rng = np.random.default_rng(2)
    im10 = rng.uniform(1, 100, (4, 20, 14))
    im20 = rng.uniform(1, 100, (6, 10, 7))
    _save_v73(tmp_path / "g.mat", {"im10": im10, "im20": im20})
    scene = read_scene(tmp_path / "g.mat")
    assert scene.shape == (20, 14)
    np.testing.assert_allclose(scene.bands["B08"], im10[3].astype(np.float32))
    np.testing.assert_allclose(scene.bands["B12"], im20[5].astype(np.float32))
    assert scene.reference is None


def test_v5_grouped_layout(tmp_path):
    rng = np.random.default_rng(3)
    sio.savemat(tmp_path / "g.mat", {"im10": rng.uniform(1, 9, (4, 8, 8)), "im20": rng.uniform(1, 9, (6, 4, 4))})
    assert read_scene(tmp_path / "g.mat").shape == (8, 8)


def test_dsen2_grouped_layout_as_published_in_both_file_versions(tmp_path):
    """MATLAB holds im10 as H x W x 4 (HDF5 stores it as (4, W, H)); both v5 and v7.3 read the same bands."""
    rng = np.random.default_rng(4)
    im10 = rng.uniform(1, 100, (20, 14, 4))  # H x W x bands, non-square so a transposition would show
    im20 = rng.uniform(1, 100, (10, 7, 6))
    im60 = rng.uniform(1, 100, (4, 3, 2))  # 2 bands; H/6-ish sizes are not checked for 60 m bands
    sio.savemat(tmp_path / "v5.mat", {"im10": im10, "im20": im20, "im60": im60})
    _save_v73(tmp_path / "v73.mat", {"im10": im10, "im20": im20, "im60": im60})
    with h5py.File(tmp_path / "v73.mat", "r") as h5:
        assert h5["im10"].shape == (4, 14, 20)  # the HDF5 view: (bands, W, H)
    for name in ("v5.mat", "v73.mat"):
        scene = read_scene(tmp_path / name)
        assert scene.shape == (20, 14)
        np.testing.assert_allclose(scene.bands["B03"], im10[..., 1].astype(np.float32))
        np.testing.assert_allclose(scene.bands["B11"], im20[..., 4].astype(np.float32))
        np.testing.assert_allclose(scene.bands["B09"], im60[..., 1].astype(np.float32))


def test_grouped_layout_with_an_ambiguous_band_axis_is_refused(tmp_path):
    sio.savemat(tmp_path / "a.mat", {"im10": np.ones((4, 8, 4)), "im20": np.ones((2, 4, 6))})
    with pytest.raises(SceneError, match=r"a\.mat: im10 is 4x8x4: ambiguous, .* store it as H x W x 4"):
        read_scene(tmp_path / "a.mat")
    sio.savemat(tmp_path / "b.mat", {"im10": np.ones((8, 4, 8)), "im20": np.ones((4, 6, 4))})
    with pytest.raises(SceneError, match=r"b\.mat: im10 must be H x W x 4 \(or 4 x H x W\) .* got 8x4x8"):
        read_scene(tmp_path / "b.mat")


def test_unknown_layout(tmp_path):
    sio.savemat(tmp_path / "x.mat", {"foo": np.ones((3, 3))})
    with pytest.raises(SceneReadError, match=r"x\.mat: unknown MATLAB layout: .*found foo"):
        read_scene(tmp_path / "x.mat")


def test_corrupt_file(tmp_path):
    (tmp_path / "c.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200) + b"\x01\x02garbage" * 10)
    with pytest.raises(SceneReadError, match=r"c\.mat: cannot read MATLAB file"):
        read_scene(tmp_path / "c.mat")


def test_wrong_cell_count(tmp_path):
    _save_cells(tmp_path / "w.mat", _cells()[:11])
    with pytest.raises(SceneError, match=r"w\.mat: Yim must be a cell array of 12 bands, got 11"):
        read_scene(tmp_path / "w.mat")


def test_grouped_wrong_band_count(tmp_path):
    sio.savemat(tmp_path / "g.mat", {"im10": np.ones((4, 8, 8)), "im20": np.ones((5, 4, 4))})
    with pytest.raises(SceneError, match=r"g\.mat: im20 must be H x W x 6 \(or 6 x H x W\) .* got 5x4x4"):
        read_scene(tmp_path / "g.mat")


def test_half_size_error_prints_both_sizes(tmp_path):
    cells = _cells(16, 12)
    cells[ALL_BANDS.index("B11")] = np.ones((7, 6), dtype=np.uint16)
    _save_cells(tmp_path / "h.mat", cells)
    with pytest.raises(SceneError, match=r"h\.mat: 20 m band B11 is 7x6, not half the 10 m size 16x12"):
        read_scene(tmp_path / "h.mat")


def test_non_numeric_cell(tmp_path):
    cells: list[object] = list(_cells())
    inner = np.empty((1, 1), dtype=object)
    inner[0, 0] = np.ones(3)
    cells[ALL_BANDS.index("B03")] = inner
    _save_cells(tmp_path / "o.mat", cells)
    with pytest.raises(SceneError, match=r"o\.mat: Yim band B03 is not a numeric array"):
        read_scene(tmp_path / "o.mat")


def test_all_zero_required_band_but_zero_60m_allowed(tmp_path):
    cells = _cells()
    cells[ALL_BANDS.index("B01")] = np.zeros_like(cells[0])
    cells[ALL_BANDS.index("B09")] = np.zeros((0, 0), dtype=np.uint8)
    _save_cells(tmp_path / "ok.mat", cells)
    assert "B01" not in read_scene(tmp_path / "ok.mat").bands
    cells[ALL_BANDS.index("B07")] = np.zeros((8, 6), dtype=np.uint16)
    _save_cells(tmp_path / "z.mat", cells)
    with pytest.raises(SceneError, match=r"z\.mat: band B07 is all zeros"):
        read_scene(tmp_path / "z.mat")


def test_read_mat_arrays_v73_reference_orientation(shared_data):
    arrays = read_mat_arrays(shared_data / "coastalA_cell_RR.mat")
    assert arrays["Xm_im"].shape == (204, 204, 6)
    assert isinstance(arrays["Yim"], list) and len(arrays["Yim"]) == 12
