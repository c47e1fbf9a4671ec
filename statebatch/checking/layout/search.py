"""Nearest-neighbour search and batch coherence, for successors that may sit anywhere.

Shuffled lanes hide each row's successor somewhere among the rows; these helpers find the nearest
row starts to row ends within a subset of rows (whole random batches, so successors can be
aggregated per batch), and test whether the nearest starts of one batch's row ends gather in one
other batch, against the same rows with their batch labels permuted: an exact null for
independent samples, whatever their distribution.
"""

from __future__ import annotations

import numpy as np

_COH_K = 3                # nearest starts per row end counted by the batch-coherence test
_COHERENCE_Z = 5.0        # batch coherence against permuted batch labels (exact null: exchangeable rows)


def _row_subset(n: int, b: int, m_sub: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``m_sub`` rows: all of them, or whole random batches (so that successors can be
    aggregated per batch), or random rows."""
    if m_sub >= n:
        return np.arange(n)
    if b > 1 and m_sub // b >= 8:
        bat = np.sort(rng.choice(n // b, m_sub // b, replace=False))
        return (bat[:, None] * b + np.arange(b)[None, :]).ravel()
    return np.sort(rng.choice(n, m_sub, replace=False))


def _coherence_stats(lab: np.ndarray, anchors: np.ndarray, targets: np.ndarray, g: int) -> tuple[float, float]:
    """For batch labels ``lab`` of the subset rows: the sum over anchor batches of the largest
    number of their rows whose target lies in one *other* batch, and the number of targets in the
    anchor's own batch."""
    a, c = lab[anchors], lab[targets]
    own = float(np.count_nonzero(a == c))
    key = a[a != c] * g + c[a != c]
    if key.size == 0:
        return 0.0, own
    uk, cnt = np.unique(key, return_counts=True)
    row = uk // g
    starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
    return float(np.maximum.reduceat(cnt, starts).sum()), own


def _batch_coherence(bid: np.ndarray, anchors: np.ndarray, targets: np.ndarray, rng: np.random.Generator,
                     n_perm: int = 100) -> dict[str, float]:
    """Do the targets (nearest successors) of the rows of one batch gather in one other batch?

    A permutation test of the batch labels: under independent samples (exchangeable rows) which
    batch a row sits in says nothing about where its nearest neighbour sits, so the statistic
    with the labels randomly permuted among the rows is its exact null distribution, whatever the
    distribution of the rows (correlated features, curves, quantised values). Returns the z of the
    observed statistic against the permutations, whether it beat all of them, the effect (0: like
    the permutations, 1: every row's target in one batch) and the same z for the own batch.
    """
    _, lab = np.unique(bid, return_inverse=True)
    g = int(lab.max()) + 1
    obs, own = _coherence_stats(lab, anchors, targets, g)
    perm = np.array([_coherence_stats(lab[rng.permutation(lab.size)], anchors, targets, g)
                     for _ in range(n_perm)])
    mu, sd = perm.mean(axis=0), perm.std(axis=0)
    z = (obs - mu[0]) / max(sd[0], 0.5)
    z_own = (own - mu[1]) / max(sd[1], 0.5)
    eff = (obs - mu[0]) / max(anchors.size - mu[0], 1.0)
    return dict(z=float(z), beat_all=bool(obs > perm[:, 0].max()), effect=float(eff), z_own=float(z_own),
                observed=obs, null_mean=float(mu[0]))


def _coherent(coh: dict) -> bool:
    """Batch coherence conclusive: far beyond every permutation, and not explained by rows that
    resemble their own batch (grouped samples of one series, say), which shuffled lanes never do."""
    return coh["z"] >= _COHERENCE_Z and coh["beat_all"] and coh["z_own"] < 3


def _nearest_top(E: np.ndarray, S: np.ndarray, self_idx: np.ndarray, okS: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """Indices ``(len(E), _COH_K)`` of the nearest rows of S to each row of E (not its own row, only
    okS rows), ties broken at random (quantised data has many; a first-index rule would tie them
    to positions)."""
    return _nearest(E, S, self_idx, okS, -1.0, None, rng, _COH_K)[5]


def _nearest(E: np.ndarray, S: np.ndarray, self_idx: np.ndarray, okS: np.ndarray, rad: float,
             groups: np.ndarray | None, rng: np.random.Generator | None = None, topk: int = 0):
    """For each row of E: the smallest squared distance to a row of S (excluding its own row and
    rows not okS) and its index (ties broken at random when ``rng`` is given, else the first); how
    many rows of S lie within squared distance ``rad`` (per row of E, per row of S, and per row of
    E and group of S -- groups start at ``groups``). With ``topk``, also the indices of the
    ``topk`` nearest rows of S (ties broken the same way). A negative ``rad`` skips the counts."""
    s2 = np.sum(S * S, axis=1)
    top = np.empty((E.shape[0], topk), dtype=np.int64) if topk else None
    s2 = np.where(okS, s2, np.inf)
    best = np.empty(E.shape[0])
    arg = np.empty(E.shape[0], dtype=np.int64)
    cnt = np.zeros(E.shape[0])
    col = np.zeros(S.shape[0])
    agg = np.zeros((E.shape[0], groups.size)) if groups is not None else None
    blk = max(1, 8_000_000 // max(S.shape[0], 1))
    for a0 in range(0, E.shape[0], blk):
        e = E[a0: a0 + blk]
        d = s2[None, :] - 2.0 * (e @ S.T)
        d[np.arange(e.shape[0]), self_idx[a0: a0 + blk]] = np.inf
        if rad >= 0 or groups is not None:          # counts (skipped for a bare search)
            e2 = np.sum(e * e, axis=1)
            within = d <= (rad - e2)[:, None]
            cnt[a0: a0 + blk] = np.count_nonzero(within, axis=1)
            col += np.count_nonzero(within, axis=0)
            if agg is not None and groups is not None:
                agg[a0: a0 + blk] = np.add.reduceat(within, groups, axis=1, dtype=np.int32)  # counts: 4x faster than float
        rows = np.arange(e.shape[0])
        # Repeated argmins (a few passes) beat argpartition on wide blocks by far. Each pass after the
        # first also shows ties of the previous pick (the next smallest equals it): only those rows are
        # looked at again, to break the tie at random.
        k = np.argmin(d, axis=1)
        for i in range(max(topk, 1)):
            m = d[rows, k]
            last = i == max(topk, 1) - 1
            if rng is not None or not last:
                d[rows, k] = np.inf
                k_next = np.argmin(d, axis=1)
                if rng is not None:
                    t = np.flatnonzero((d[rows, k_next] == m) & np.isfinite(m))
                    if t.size:
                        d[t, k[t]] = m[t]
                        tied = d[t] == m[t][:, None]
                        k[t] = np.argmax(tied * rng.random(tied.shape), axis=1)
                        d[t, k[t]] = np.inf
                        k_next[t] = np.argmin(d[t], axis=1)
            if i == 0:
                arg[a0: a0 + blk] = k
                diff = e - S[k]
                best[a0: a0 + blk] = np.sum(diff * diff, axis=1)
            if top is not None:
                top[a0: a0 + blk, i] = np.where(np.isfinite(m), k, top[a0: a0 + blk, 0])
            if not last:
                k = k_next
    return (best, arg, cnt, col, agg) if not topk else (best, arg, cnt, col, agg, top)
