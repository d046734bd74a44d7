"""NumPy .npz scenes: one array per band; georeferencing; every validation error."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_edge.bands import COARSE_BANDS, FINE_BANDS
from ssc_edge.errors import SceneError, SceneReadError
from ssc_edge.io import read_scene
from ssc_edge.io.npz import read_npz_arrays, read_npz_scene, write_npz
from ssc_edge.scene import GeoReference


def _bands(height: int = 12, width: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {b: rng.uniform(100, 4000, (height, width)).astype(np.float32) for b in FINE_BANDS}
    out.update({b: rng.uniform(100, 4000, (height // 2, width // 2)).astype(np.uint16) for b in COARSE_BANDS})
    return out


def _save(path, arrays) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_round_trip_with_reference_and_georef(tmp_path):
    bands = _bands()
    reference = np.random.default_rng(1).uniform(1, 9, (12, 10, 6))
    transform = (20.0, 0.0, 399960.0, 0.0, -20.0, 7100040.0)
    _save(tmp_path / "s.npz", {**bands, "reference": reference, "transform": np.array(transform), "crs": "EPSG:32627"})
    scene = read_scene(tmp_path / "s.npz")
    assert scene.shape == (12, 10) and scene.fine_pixel_size == 20.0
    for name, array in bands.items():
        np.testing.assert_array_equal(scene.bands[name], array.astype(np.float32))
    np.testing.assert_allclose(scene.reference, reference.astype(np.float32))
    assert scene.georef == GeoReference(transform, "EPSG:32627")


def test_band_names_are_normalised(tmp_path):
    bands = {name.replace("B0", "b").replace("B8A", "T27WVM_b8a"): array for name, array in _bands().items()}
    assert "b2" in bands and "T27WVM_b8a" in bands
    _save(tmp_path / "n.npz", {**bands, "fine_pixel_size": 10.0, "notes": np.arange(3)})
    scene = read_npz_scene(tmp_path / "n.npz")
    assert set(scene.bands) == set(FINE_BANDS + COARSE_BANDS)
    assert scene.reference is None and scene.georef is None and scene.fine_pixel_size == 10.0


def test_zero_60m_band_is_dropped(tmp_path):
    _save(tmp_path / "z.npz", {**_bands(), "B01": np.zeros((2, 2)), "B09": np.ones((2, 2))})
    scene = read_npz_scene(tmp_path / "z.npz")
    assert "B01" not in scene.bands and "B09" in scene.bands


def test_write_npz_round_trip(tmp_path):
    image = np.random.default_rng(2).uniform(0, 1e4, (6, 8, 6)).astype(np.float32)
    georef = GeoReference((10.0, 0.0, 5e5, 0.0, -10.0, 7e6), "EPSG:32627")
    write_npz(tmp_path / "r.npz", image, band_names=COARSE_BANDS, georef=georef)
    arrays = read_npz_arrays(tmp_path / "r.npz")
    assert list(arrays)[:6] == list(COARSE_BANDS)
    np.testing.assert_array_equal(np.stack([arrays[b] for b in COARSE_BANDS], -1), image)
    assert tuple(arrays["transform"]) == georef.transform and str(arrays["crs"]) == georef.crs


def _broken(change: dict) -> dict:
    bands = _bands()
    for key, value in change.items():
        if value is None:
            del bands[key]
        else:
            bands[key] = value
    return bands


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"B03": None}, SceneError, r"missing band B03 \(needs B02, B03"),
        ({"B11": None}, SceneError, r"missing band B11"),
        ({"B05": np.ones((7, 5))}, SceneError, r"20 m band B05 is 7x5, not half the 10 m size 12x10"),
        ({"B08": np.ones((12, 9))}, SceneError, r"10 m band B08 is 12x9, but B02 is 12x10"),
        ({"B04": np.full((12, 10), np.nan)}, SceneError, r"band B04 has 120 non-finite values"),
        ({"B12": np.full((6, 5), np.inf)}, SceneError, r"band B12 has 30 non-finite values"),
        ({"B06": np.zeros((6, 5))}, SceneError, r"band B06 is all zeros"),
        ({"B02": np.zeros((0, 0))}, SceneError, r"band B02 is empty \(0x0\)"),
        ({"B02": np.ones((12, 10), dtype=np.complex64)}, SceneError, r"band B02 has unsupported dtype complex64"),
        ({"B07": np.ones((6, 5), dtype=bool)}, SceneError, r"band B07 has unsupported dtype bool"),
        ({"B07": np.array(["a", "b"])}, SceneError, r"band B07 has unsupported dtype <U1"),
        ({"B07": np.ones((6, 5, 2))}, SceneError, r"band B07 has 3 dimensions, expected 2"),
        ({"B2": np.ones((12, 10))}, SceneError, r"arrays 'B02' and 'B2' both hold band B02"),
        ({"transform": np.ones(6)}, SceneError, r"georeferencing needs both 'transform'"),
    ],
)
def test_validation_errors_name_the_file(tmp_path, change, error, message):
    _save(tmp_path / "bad.npz", _broken(change))
    with pytest.raises(error, match=r"bad\.npz: " + message):
        read_scene(tmp_path / "bad.npz")


def test_reference_of_wrong_shape(tmp_path):
    _save(tmp_path / "r.npz", {**_bands(), "reference": np.ones((12, 10, 4))})
    with pytest.raises(SceneError, match=r"r\.npz: reference is 12x10x4, expected 12x10x6"):
        read_scene(tmp_path / "r.npz")


def test_object_arrays_are_refused_not_unpickled(tmp_path):
    path = tmp_path / "o.npz"
    with open(path, "wb") as f:
        np.savez(f, B02=np.array([{"a": 1}], dtype=object))
    with pytest.raises(SceneReadError, match=r"o\.npz: array 'B02' holds Python objects \(pickled\); refused"):
        read_scene(path)


def test_unknown_layout(tmp_path):
    _save(tmp_path / "u.npz", {"image": np.ones((4, 4, 10))})
    with pytest.raises(SceneReadError, match=r"u\.npz: unknown \.npz layout: .*found image"):
        read_scene(tmp_path / "u.npz")


def test_corrupt_archive(tmp_path):
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    with pytest.raises(SceneReadError, match=r"c\.npz: cannot read \.npz file"):
        read_scene(tmp_path / "c.npz")


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(SceneReadError, match=r"nope\.npz: no such file or folder"):
        read_scene(tmp_path / "nope.npz")
    (tmp_path / "e.npz").write_bytes(b"")
    with pytest.raises(SceneReadError, match=r"e\.npz: file is empty"):
        read_scene(tmp_path / "e.npz")
    (tmp_path / "t.npz").write_text("hello")
    with pytest.raises(SceneReadError, match=r"t\.npz: unknown file format"):
        read_scene(tmp_path / "t.npz")
