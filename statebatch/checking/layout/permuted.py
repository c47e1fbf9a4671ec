"""Rows permuted inside batches: each row end continues into *some* row of the next batch.

Lane ``i`` of batch ``k`` then continues into another lane of batch ``k+1``. The test compares
each row end's best junction with the next batch's row starts against the same with a control
batch at the same positions (batch ``k-1``; the row's own batch for one step per row), so rows
that all start and end at one level (recordings at rest) cannot look continued.
"""

from __future__ import annotations

import math

import numpy as np

from ...results.provenance import SHUFFLED
from .junction import _Junction
from .ranks import _rms_scale, _sqdist
from .verdict import _SHUFFLED_FIX, Context, LayoutVerdict

_MIN_STAT_PAIRS = 32      # rank statistics need more pairs than exact evidence
_NEXT_BATCH_Z = 4.0       # batch-level z of the next-batch test (threshold)
_NEXT_BATCH_U = 0.56      # and the share of rows whose best match lies in the next batch (0.5: none)


def _next_batch(ctx: Context, jm: _Junction | None) -> dict | None:
    """Do the row ends of batch k continue into *some* row of batch k+1 (rows permuted inside
    batches), judged against a null with the same start/end structure?

    For every row end of an anchor batch k, the best junction with a row start of batch k+1 is
    compared with the best junction with a row start of a control batch at the same positions:
    batch k-1 when T >= 2 (the same distance from k, in the other direction: samples sorted or
    grouped by anything look the same both ways, a successor only forwards), the anchor's own
    batch when T == 1 (one step per row has no direction; rows grouped by series resemble their
    own batch, shuffled lanes do not). Rows that all start and end
    at one level (recordings at rest) give both sides the same low scores. Batches are the units
    of the test (rows of one batch share their candidates). Returns the share ``u`` of rows whose
    best match is in batch k+1 (0.5 = no relation), its batch-level ``z``, and ``same_row``: how
    often that best match is the row's own lane (row i), high for lanes, ~1/B for permuted rows.
    """
    X, b, n, keepf, rng = ctx.X, ctx.batch_size, ctx.n, ctx.keep, ctx.rng
    nb = n // b
    if b < 2 or nb < 4:
        return None
    t = X.shape[1]
    ks = np.arange(1, nb - 1)
    m = min(ks.size, max(8, ctx.max_rows // b))
    if m < ks.size:
        ks = np.sort(rng.choice(ks, m, replace=False))
    # control: batch k-1 (T >= 2); with one step per row, which has no direction, the anchor's own
    # batch (its other rows: rows grouped by series resemble their own batch, shuffled lanes never do)
    ctrl = ks - 1 if t > 1 else ks
    p = jm.p if jm is not None else 1

    def rows_of(kk: np.ndarray, steps: slice) -> np.ndarray:
        idx = (kk[:, None] * b + np.arange(b)[None, :]).ravel()
        return np.asarray(X[idx, steps], dtype=np.float64)[..., keepf].reshape(kk.size, b, -1, int(keepf.sum()))

    if jm is None:                                      # one step per row: distances of the steps
        A = rows_of(ks, slice(0, 1))[:, :, 0]
        Nx, C = rows_of(ks + 1, slice(0, 1))[:, :, 0], rows_of(ctrl, slice(0, 1))[:, :, 0]
        sc = _rms_scale(A.reshape(-1, 1, A.shape[-1]))
        E, SN, SC = A / sc, Nx / sc, C / sc
    else:
        E = jm.end_sig(rows_of(ks, slice(t - p, t)))
        SN = jm.start_sig(rows_of(ks + 1, slice(0, p)))
        SC = jm.start_sig(rows_of(ctrl, slice(0, p)))
    ok = np.isfinite(E).all(-1)[:, :, None] & np.isfinite(SN).all(-1)[:, None, :]
    okc = np.isfinite(E).all(-1)[:, :, None] & np.isfinite(SC).all(-1)[:, None, :]
    fin = lambda a: np.where(np.isfinite(a), a, 0.0)                              # noqa: E731
    dN = np.where(ok, _sqdist(fin(E), fin(SN)), np.inf)                           # (m, B, B)
    dC = np.where(okc, _sqdist(fin(E), fin(SC)), np.inf)
    same = dN.argmin(-1)
    if t == 1:
        # the own batch offers B-1 other rows: offer as many from the next batch (one left out at random)
        dC[:, np.arange(b), np.arange(b)] = np.inf
        dN = dN.copy()
        dN[np.arange(ks.size), :, rng.integers(0, b, ks.size)] = np.inf
    bn, bc = dN.min(-1), dC.min(-1)
    valid = np.isfinite(bn) & np.isfinite(bc)
    if valid.sum() < _MIN_STAT_PAIRS:
        return None
    win = (bn < bc) + 0.5 * (bn == bc)
    per = np.array([win[k][valid[k]].mean() if valid[k].any() else np.nan for k in range(ks.size)])
    per = per[np.isfinite(per)]
    u = float(per.mean())
    sd = max(float(per.std(ddof=1)) if per.size > 1 else 0.5, 0.5 / math.sqrt(b))
    z = (u - 0.5) / (sd / math.sqrt(per.size))
    same = float(np.mean(same[valid] == np.broadcast_to(np.arange(b), valid.shape)[valid]))
    return dict(u=u, z=float(z), same_row=same, batches=int(per.size), rows=int(valid.sum()),
                control="batch k-1" if t > 1 else "the row's own batch")


def _permuted_verdict(nbt: dict | None, ctx: Context) -> LayoutVerdict | None:
    """``shuffled_lanes`` when row ends continue into the next batch, but not into their own row."""
    if nbt is None:
        return None
    b = ctx.batch_size
    ctx.scores.update(next_batch_u=nbt["u"], next_batch_z=nbt["z"], next_batch_same_row=nbt["same_row"])
    # Lanes: the best match is the row's own lane whenever the boundary carries any signal; rows
    # permuted at random: the own lane only by chance, 1/B (whatever the signal, identity batches included)
    chance = 1.0 / b
    own_ok = nbt["same_row"] <= chance + max(0.08, 4 * math.sqrt(chance * (1 - chance) / max(nbt["rows"], 1)))
    if nbt["z"] < _NEXT_BATCH_Z or nbt["u"] < _NEXT_BATCH_U or not own_ok:
        return None
    what = ("the nearest neighbours of a row" if nbt["control"] == "the row's own batch"
            else "the best-matching row start after a row end")
    ev = (f"the rows of each batch continue into rows of the next batch, but not into the same row: for "
          f"{nbt['u']:.0%} of {nbt['rows']} rows in {nbt['batches']} batches {what} lies "
          f"in batch k+1 rather than in {nbt['control']} (50% if unrelated; z={nbt['z']:.1f} over batches), "
          f"and it is the row's own lane in only {nbt['same_row']:.0%} (lanes: most; permuted rows: "
          f"~{1 / b:.0%}): the rows were permuted inside the batches (or the lanes were shuffled)")
    return ctx.verdict(SHUFFLED, evidence=ev + ".", fix=_SHUFFLED_FIX,
                         confidence=float(np.clip(2 * (nbt["u"] - 0.5), 0, 1)))
