"""Small rank and distance statistics of the layout detector (pure numpy).

Ranks (Mann-Whitney AUCs, paired comparisons) make the tests free of the scale and distribution
of the junction scores; distances are matrix products, never ``(k, l, D)`` difference arrays.
"""

from __future__ import annotations

import math

import numpy as np


def _auc(a: np.ndarray, b: np.ndarray) -> float:
    """P(a < b) + P(a == b) / 2 over all pairs (Mann-Whitney)."""
    a = np.asarray(a, float).ravel()
    b = np.sort(np.asarray(b, float).ravel())
    if a.size == 0 or b.size == 0:
        return 0.5
    lo = np.searchsorted(b, a, "left")
    hi = np.searchsorted(b, a, "right")
    return float(np.sum((b.size - hi) + 0.5 * (hi - lo)) / (a.size * b.size))


def _auc_se(auc: float, n1: int, n2: int) -> float:
    """Hanley-McNeil standard error of an AUC (with a floor for extreme values)."""
    a = min(max(auc, 0.02), 0.98)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n2 - 1) * (q2 - a * a)) / max(n1 * n2, 1)
    return math.sqrt(max(var, 1e-12))


def _paired_less(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """P(a_i < b_i) with ties 1/2, and its standard error."""
    p = float(np.mean((a < b) + 0.5 * (a == b))) if a.size else 0.5
    return p, math.sqrt(max(p * (1 - p), 0.01) / max(a.size, 1))


def _rms_scale(x: np.ndarray) -> np.ndarray:
    sd = x.reshape(-1, x.shape[-1]).std(axis=0)
    return np.where(sd > 0, sd, 1.0)


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared distances between the rows of ``a (..., k, D)`` and ``b (..., l, D)``: ``(..., k, l)``
    (a matrix product, not a ``(k, l, D)`` difference array)."""
    d = (np.sum(a * a, -1)[..., :, None] + np.sum(b * b, -1)[..., None, :]
         - 2.0 * np.matmul(a, np.swapaxes(b, -1, -2)))
    return np.maximum(d, 0.0)
