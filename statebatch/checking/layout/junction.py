"""The junction model: how well the end of one row predicts the start of another.

Small autoregressive predictors fitted *inside* the rows (forward and backward, per feature) score
a junction "row a then row b" by the normalised residuals of predicting across it. Cuts inside
rows are true continuations; junctions between random rows are none: every statistical step of
the detector compares a candidate junction with those two.
"""

from __future__ import annotations

import math

import numpy as np

_FIT_STEPS = 32768        # steps per feature used to fit the junction predictors


class _Junction:
    """Forward/backward AR(p) predictors fitted inside rows, per feature.

    The junction score of "row a then row b" is the squared normalised residual of predicting b's
    first step from a's last p steps plus that of predicting a's last step from b's first p steps.
    The same score at a cut inside a row is a true continuation; between random rows, none.
    """

    def __init__(self, rows: np.ndarray, p: int):
        # rows: (S, T, F) float64, T >= 2p
        self.p = p
        # a few tens of thousands of steps per feature pin down p+1 coefficients; more only costs time
        keep = max(8, _FIT_STEPS // max(rows.shape[1], 1))
        if rows.shape[0] > keep:
            rows = rows[:: -(-rows.shape[0] // keep)]
        self.mean = rows.mean(axis=(0, 1))
        c = rows - self.mean
        self.cf, self.sf = self._fit(c, p)
        self.cb, self.sb = self._fit(c[:, ::-1], p)

    @staticmethod
    def _fit(c: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
        s, t, f = c.shape
        y = c[:, p:, :].reshape(-1, f)
        z = np.stack([c[:, p - k: t - k, :].reshape(-1, f) for k in range(1, p + 1)]
                     + [np.ones_like(y)], axis=-1)                       # (N, F, p+1)
        g = np.einsum("nfi,nfj->fij", z, z)
        b = np.einsum("nfi,nf->fi", z, y)
        ridge = 1e-9 * np.trace(g, axis1=1, axis2=2)[:, None, None] + 1e-300
        coef = np.linalg.solve(g + ridge * np.eye(p + 1), b[..., None])[..., 0]  # (F, p+1)
        r = y - np.einsum("nfi,fi->nf", z, coef)
        # scale from the smallest 98% of squared residuals (resets and outliers inflate the rest)
        r2 = r * r
        keep = max(1, int(math.ceil(0.98 * r2.shape[0])))
        if keep < r2.shape[0]:
            r2 = np.partition(r2, keep - 1, axis=0)[:keep]
        scale = np.sqrt(r2.mean(axis=0))
        sd = c.reshape(-1, f).std(axis=0)
        scale = np.maximum(scale, 1e-6 * sd + 1e-300)
        return coef, scale

    def _pred(self, ctx: np.ndarray, coef: np.ndarray) -> np.ndarray:
        # ctx (..., p, F), ctx[..., 0, :] = nearest step (lag 1)
        out = coef[:, self.p].copy() * np.ones(ctx.shape[:-2] + (ctx.shape[-1],))
        for k in range(self.p):
            out = out + coef[:, k] * (ctx[..., k, :] - self.mean)
        return out + self.mean

    def fwd_pred(self, left: np.ndarray) -> np.ndarray:
        """Predict the next step after left[..., -p:, :] (time order)."""
        return self._pred(left[..., ::-1, :][..., : self.p, :], self.cf)

    def bwd_pred(self, right: np.ndarray) -> np.ndarray:
        """Predict the step before right[..., :p, :]."""
        return self._pred(right[..., : self.p, :], self.cb)

    def end_sig(self, left: np.ndarray) -> np.ndarray:
        """2F-dim signature of a row end: (predicted next step, last step), normalised."""
        return np.concatenate([self.fwd_pred(left) / self.sf, left[..., -1, :] / self.sb], axis=-1)

    def start_sig(self, right: np.ndarray) -> np.ndarray:
        """2F-dim signature of a row start: (first step, predicted previous step), normalised."""
        return np.concatenate([right[..., 0, :] / self.sf, self.bwd_pred(right) / self.sb], axis=-1)

    def score(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        d = self.end_sig(left) - self.start_sig(right)
        return np.sum(d * d, axis=-1)
