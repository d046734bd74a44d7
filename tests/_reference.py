"""Independent reference implementations for the tests: written from the published definitions, sharing no
code with ``ssc_edge`` (no filter of ``scipy.ndimage`` either), so a test that compares against them checks the
package's numbers rather than copying them.

- :func:`imresize`: MATLAB ``imresize(x, scale, 'bicubic')`` as its ``contributions`` routine builds it (Keys
  cubic, a = -0.5; stretched by ``1 / scale`` when shrinking, the antialiasing; mirror-symmetric edges), as one
  resampling matrix per axis. Anchored by the data README's fact that the Reykjavik RR cells *are*
  ``imresize(x, 0.5)`` of its reference (``tests/test_quality.py``).
- :func:`sre`: the README's per-band SRE, ``10 log10(sum ref^2 / sum (ref - est)^2)``.
- :func:`qnr`: QNR, D_lambda and D_s (Alparone et al. 2008, PE&RS 74(2)) with the universal image quality index
  (Wang and Bovik 2002) in S x S sliding windows by summed-area tables.
"""

from __future__ import annotations

import numpy as np


def _keys(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return ((1.5 * x - 2.5) * x * x + 1) * (x <= 1) + (((-0.5 * x + 2.5) * x - 4) * x + 2) * ((x > 1) & (x <= 2))


def _imresize_matrix(n_in: int, scale: float) -> np.ndarray:
    """The (n_out, n_in) matrix of MATLAB imresize's ``contributions(n_in, n_out, scale, @cubic, 4, true)``."""
    n_out = int(np.ceil(n_in * scale))
    width = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, n_out + 1, dtype=np.float64)[:, None]  # MATLAB's 1-based output coordinates
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    indices = left + np.arange(int(np.ceil(width)) + 2)[None, :]
    weights = scale * _keys(scale * (u - indices)) if scale < 1 else _keys(u - indices)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(1, n_in + 1), np.arange(n_in, 0, -1)])  # aux = [1:n, n:-1:1]
    columns = mirror[np.mod(indices.astype(int) - 1, 2 * n_in)] - 1
    matrix = np.zeros((n_out, n_in))
    np.add.at(matrix, (np.repeat(np.arange(n_out), indices.shape[1]), columns.ravel()), weights.ravel())
    return matrix


def imresize(image: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(image, scale)`` (bicubic, antialiased) of a (H, W[, C]) array, float64."""
    image = np.asarray(image, dtype=np.float64)
    rows, cols = _imresize_matrix(image.shape[0], scale), _imresize_matrix(image.shape[1], scale)
    return np.einsum("lk,ik...->il...", cols, np.einsum("ij,jk...->ik...", rows, image))


def sre(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Per-band SRE (dB) of (H, W, C) arrays, the data README's formula."""
    reference, estimate = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
    return 10 * np.log10(np.sum(reference**2, axis=(0, 1)) / np.sum((reference - estimate) ** 2, axis=(0, 1)))


def _window_sums(x: np.ndarray, size: int) -> np.ndarray:
    """Sums over every ``size x size`` window inside a 2-D array (summed-area table)."""
    table = np.zeros((x.shape[0] + 1, x.shape[1] + 1))
    table[1:, 1:] = x.cumsum(0).cumsum(1)
    return table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]


def mean_q(x: np.ndarray, y: np.ndarray, size: int) -> float:
    """Universal image quality index of two 2-D images, averaged over all ``size x size`` windows inside them."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = size * size
    mx, my = _window_sums(x, size) / n, _window_sums(y, size) / n
    vx, vy = _window_sums(x * x, size) / n - mx**2, _window_sums(y * y, size) / n - my**2
    cov = _window_sums(x * y, size) / n - mx * my
    denominator = (vx + vy) * (mx**2 + my**2)
    assert (denominator > 0).all(), "a flat window: this reference does not implement qindex.m's flat rules"
    return float(np.mean(4 * cov * mx * my / denominator))


def qnr(fused: np.ndarray, fine: np.ndarray, coarse: np.ndarray, *, size: int = 32) -> tuple[float, float, float]:
    """(QNR, D_lambda, D_s) with p = q = alpha = beta = 1, ``size`` on the fine grid and ``size / 2`` on the coarse.

    ``fused`` (H, W, B) and ``fine`` (H, W, F) on the fine grid, ``coarse`` (H/2, W/2, B); the fine band of each
    coarse band is the one whose ``imresize(., 0.5)`` correlates best with it over the scene, and its low
    resolution version is that ``imresize``.
    """
    bands = coarse.shape[-1]
    fine_lr = imresize(fine, 0.5)
    corr = [[np.corrcoef(coarse[..., b].ravel(), fine_lr[..., f].ravel())[0, 1] for f in range(fine.shape[-1])]
            for b in range(bands)]  # fmt: skip
    match = np.argmax(corr, axis=1)
    half = size // 2
    d_lambda = np.mean([
        abs(mean_q(fused[..., i], fused[..., j], size) - mean_q(coarse[..., i], coarse[..., j], half))
        for i in range(bands) for j in range(bands) if i != j
    ])  # fmt: skip
    d_s = np.mean([
        abs(mean_q(fused[..., b], fine[..., f], size) - mean_q(coarse[..., b], fine_lr[..., f], half))
        for b, f in enumerate(match)
    ])  # fmt: skip
    return float((1 - d_lambda) * (1 - d_s)), float(d_lambda), float(d_s)
