"""The 60 m set's reduced-resolution scene (the precision gate's sample) leaves no-data out."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_edge.bands import VERY_COARSE_BANDS
from ssc_edge.bandset import RatioPairModel, band_ratio, ratio_reduced_scene
from ssc_edge.demo import demo_scene
from ssc_edge.scene import Scene
from ssc_edge.wald import Kernel


def _wedged(scene: Scene, value: float | None) -> Scene:
    """The scene with its lower-left corner (a 10 m box of 100 x 80 px) set to ``value`` (None: unchanged)."""
    bands = {}
    for band, array in scene.bands.items():
        array = np.array(array, np.float32)
        q = band_ratio(band)
        if value is not None:
            array[-100 // q :, : 80 // q] = value
        bands[band] = array
    return Scene(bands=bands)


@pytest.mark.parametrize(
    "degradation, model, ring",
    [
        ("mtf", None, 2),
        ("bicubic", None, 2),
        # kernels filled below; B01 1.5 / 2 px off moves the 10 m bands' kernels 7.5 / 10 px the other way, and the
        # reach (the largest tap offset) is taken on both sides: 2 x 10 / 6 coarse pixels more on the far side
        ("mtf", RatioPairModel(kernels={}, offsets={"B01": (1.5, -2.0)}), 6),
    ],
)
def test_no_reduced_pixel_of_the_60m_gate_sample_depends_on_no_data(degradation, model, ring):
    """Every reduced pixel whose value would change with what lies under the no-data wedge is marked 0 DN (and at
    most ``ring`` coarse pixels around them: the kernel's reach is taken on both sides), and every other pixel is
    the clean scene's own value: the gate never scores a value made from no-data."""
    scene = demo_scene(size=228)
    if model is not None:
        model = RatioPairModel(kernels={b: Kernel("gaussian", 1.1) for b in scene.bands}, offsets=model.offsets)
    clean, reference = ratio_reduced_scene(
        _wedged(scene, None), VERY_COARSE_BANDS, degradation=degradation, model=model
    )
    wedged, _ = ratio_reduced_scene(_wedged(scene, 0.0), VERY_COARSE_BANDS, degradation=degradation, model=model)
    other, _ = ratio_reduced_scene(_wedged(scene, 5000.0), VERY_COARSE_BANDS, degradation=degradation, model=model)
    marked_any = False
    for band in clean.bands:
        depends = other.bands[band] != clean.bands[band]  # the pixels whose value reads the wedge's area
        marked = wedged.bands[band] == 0
        assert depends.any(), band
        assert not (depends & ~marked).any(), band  # every pixel that reads it is no-data
        rows, cols = np.nonzero(depends)
        near = np.zeros_like(marked)
        near[max(rows.min() - ring, 0) : rows.max() + ring + 1, max(cols.min() - ring, 0) : cols.max() + ring + 1] = 1
        assert not (marked & ~near).any(), band
        np.testing.assert_array_equal(wedged.bands[band][~marked], clean.bands[band][~marked])
        marked_any |= bool(marked.any())
    assert marked_any and reference.shape == (36, 36, 2)
