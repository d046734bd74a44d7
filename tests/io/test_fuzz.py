"""Fuzzing the readers: whatever the bytes, the outcome is a Scene/array or an SscEdgeError, never another exception."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssc_edge.bands import ALL_BANDS
from ssc_edge.errors import SscEdgeError
from ssc_edge.io import read_estimate, read_scene
from ssc_edge.scene import Scene

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

MAGIC = [b"", b"MATLAB 5.0 MAT-file, Platform: GLNXA64", b"PK\x03\x04", b"II*\x00", b"MM\x00*", b"\x93NUMPY\x01\x00"]


def _outcome(read, path) -> object:
    try:
        return read(path)
    except SscEdgeError as exc:
        message = str(exc)
        assert "\n" not in message and str(path) in message, message
        return exc


@FUZZ
@given(head=st.sampled_from(MAGIC), body=st.binary(max_size=2000))
def test_random_bytes(tmp_path, head, body):
    path = tmp_path / "fuzz.bin"
    path.write_bytes(head + body)
    assert not isinstance(_outcome(read_scene, path), Scene)
    _outcome(read_estimate, path)


@pytest.fixture(scope="module")
def real_copies(shared_data, tmp_path_factory):
    """The HDF5 (v7.3) and v5 files read into memory once; the tests write truncated copies."""
    folder = tmp_path_factory.mktemp("real")
    names = ("coastalA_cell_RR.mat", "reykjavik_cell_RR.mat")
    for name in names:
        shutil.copyfile(shared_data / name, folder / name)
    return {name: (folder / name).read_bytes() for name in names}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["coastalA_cell_RR.mat", "reykjavik_cell_RR.mat"]), fraction=st.floats(0.0, 0.999))
def test_truncated_real_files(tmp_path, real_copies, name, fraction):
    data = real_copies[name]
    path = tmp_path / f"truncated_{name}"
    path.write_bytes(data[: int(len(data) * fraction)])
    _outcome(read_scene, path)
    _outcome(read_estimate, path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(["coastalA_cell_RR.mat", "reykjavik_cell_RR.mat"]),
    where=st.one_of(st.integers(0, 4095), st.floats(0.0, 0.99)),
    junk=st.binary(min_size=1, max_size=64),
)
def test_corrupted_real_files(tmp_path, real_copies, name, where, junk):
    """Junk in the HDF5 superblock/metadata, or inside the compressed v5 data (zlib errors)."""
    data = bytearray(real_copies[name])
    offset = where if isinstance(where, int) else int(where * len(data))
    data[offset : offset + len(junk)] = junk
    path = tmp_path / f"corrupted_{name}"
    path.write_bytes(bytes(data))
    _outcome(read_scene, path)
    _outcome(read_estimate, path)


DTYPES = st.sampled_from(["uint8", "int16", "float32", "float64", "complex64", "bool", "<U2", "datetime64[s]"])
SHAPES = st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple)
KEYS = st.sampled_from([*ALL_BANDS, "B2", "b8a", "reference", "transform", "crs", "fine_pixel_size", "junk"])


@st.composite
def npz_contents(draw) -> bytes:
    arrays = {}
    for key in draw(st.lists(KEYS, max_size=14, unique=True)):
        shape, dtype = draw(SHAPES), draw(DTYPES)
        arrays[key] = (
            np.full(shape, draw(st.sampled_from([0, 1, 7])), dtype=np.dtype(dtype).str)
            if np.dtype(dtype).kind not in "MU"
            else np.zeros(shape, dtype=dtype)
        )
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@FUZZ
@given(content=npz_contents())
def test_npz_wrong_shapes_and_dtypes(tmp_path, content):
    path = tmp_path / "fuzz.npz"
    path.write_bytes(content)
    _outcome(read_scene, path)
    _outcome(read_estimate, path)
