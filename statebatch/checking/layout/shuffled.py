"""Shuffled rows: successors searched for anywhere, when neither successor map continues.

Exact overlaps with any row of a random subset find shuffled sliding windows. For shuffled lanes,
each row end's nearest row starts (by the junction model's signatures) are compared with the
nearest starts of a cut inside the row among the other rows' starts at that cut (same marginals;
under any chunked arrangement the chained neighbours of a cut are >= T steps away): four tests read
that search -- more starts close after row ends (per row and per batch), *distinct* best matches
(:func:`_distinct_successors`), and batch coherence (:mod:`.search`). When none fires and the
search had too little power to see a hidden successor, the verdict is ``undetermined``, not
``independent``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...results.provenance import INDEPENDENT, SHUFFLED, SLIDING, UNDETERMINED
from .exact import _MIN_EXACT_PAIRS, _hash_steps, _subset_overlaps
from .permuted import _MIN_STAT_PAIRS
from .ranks import _rms_scale
from .search import _COH_K, _COHERENCE_Z, _batch_coherence, _coherent, _nearest, _nearest_top, _row_subset
from .statistical import Junctions
from .verdict import _SHUFFLED_FIX, Context, LayoutVerdict, _conf, _rc

_POWER_ROW = 7.0          # expected z (row test, threshold 4) below which a hidden successor may be missed
_GLOBAL_ANCHORS = 2       # anchors of the search, per max_rows
_SUCCESSOR_RATIO = 0.25   # best match / second-best (squared distances) below which a match is distinct
_SUCCESSOR_Z = 5.0        # paired z of distinct matches at row ends against cuts inside rows (threshold)
_SUCCESSOR_EFFECT = 0.1   # and the excess share of row ends with a distinct match
_UNDECIDED_FIX = ("if these rows are chunks of longer series, keep them in lane order (row i of batch k+1 "
                  "continues row i of batch k; statebatch.arrange_stateful builds that); if they are "
                  "unrelated samples, use stateful=False.")


@dataclass(frozen=True)
class Subset:
    """A random subset of rows read for the search (whole batches where possible).

    rows : ``(m,)`` sample numbers; H : ``(m, T)`` step hashes; ok : rows with finite, not
    constant hashes; first, last : ``(m, p, F')`` the first and last ``p`` steps; mid_left,
    mid_right : the ``p`` steps either side of a cut in the middle (the null); frac_in : the share
    of all rows that the subset holds (a hidden successor is in it with that chance).
    """

    rows: np.ndarray
    H: np.ndarray
    ok: np.ndarray
    first: np.ndarray
    last: np.ndarray
    mid_left: np.ndarray
    mid_right: np.ndarray
    frac_in: float


@dataclass(frozen=True)
class Search:
    """The nearest row starts to the anchors' row ends (``e_*``) and to their middle cuts (``m_*``).

    anchors : ``(k,)`` positions in the subset; E, M : ``(k, D)`` end and cut signatures; S, SM :
    ``(m, D)`` start signatures at the row starts and at the cut; okM : subset rows usable at the
    cut; bid : batch of each subset row; gstart : where each batch starts in the subset; agg :
    whether per-batch counts were taken; rad : the median continuation score (the count radius);
    best, arg, cnt, col, grp, top : as returned by :func:`~.search._nearest`.
    """

    anchors: np.ndarray
    E: np.ndarray
    M: np.ndarray
    S: np.ndarray
    SM: np.ndarray
    okM: np.ndarray
    bid: np.ndarray
    gstart: np.ndarray
    agg: bool
    rad: float
    e: tuple
    m: tuple


def _global(ctx: Context, js: Junctions) -> LayoutVerdict:
    """Successors anywhere: exact overlaps (shuffled sliding windows) and nearest-neighbour
    junctions (shuffled lanes) within a random subset of rows."""
    s = _read_subset(ctx, js.jm.p)
    v = _shuffled_windows(ctx, s) if ctx.t >= 3 else None
    if v is not None:
        return v
    sr = _search(ctx, js, s)
    row = _row_test(ctx, s, sr)
    bat = _batch_test(ctx, sr, s) if sr.agg else None
    succ = _successor_test(ctx, js, s, sr)
    ctx.scores.update(shuffled_power_row=row["power"], shuffled_power_batch=bat["power"] if bat else 0.0)
    coh_ok = False
    if ctx.batch_size > 1 and sr.gstart.size >= 4:
        # batch coherence: the nearest start to each row end, and to each interior cut, by batch
        coh = _batch_coherence(sr.bid, np.repeat(sr.anchors, _COH_K), sr.e[5].ravel(), ctx.rng)
        ctx.scores.update(coherence_z=coh["z"], coherence_effect=coh["effect"], coherence_own_z=coh["z_own"])
        coh_ok = _coherent(coh)
    if row["ok"] or (bat is not None and bat["ok"]) or coh_ok or succ["ok"]:
        return _shuffled_verdict(ctx, js, s, sr, row, bat, succ, coh_ok)
    return _no_successor_verdict(ctx, js, sr, row, bat)


def _read_subset(ctx: Context, p: int) -> Subset:
    """Read a random subset of up to ``4 * max_rows`` rows: whole rows for the step hashes, and the
    steps around the row boundaries and a middle cut (gathered in chunks to bound memory)."""
    X, n, t, keepf = ctx.X, ctx.n, ctx.t, ctx.keep
    sub = _row_subset(n, ctx.batch_size, min(n, 4 * ctx.max_rows), ctx.rng)
    m_sub = sub.size
    t0 = t // 2
    H = np.empty((m_sub, t))
    steps_needed = np.unique(np.r_[np.arange(p), np.arange(t - p, t), np.arange(t0 - p, t0 + p)])
    G = np.empty((m_sub, steps_needed.size, int(keepf.sum())))
    chunk = max(1, 4_000_000 // max(1, t * X.shape[2]))
    for s0 in range(0, m_sub, chunk):
        rows = np.asarray(X[sub[s0: s0 + chunk]])
        H[s0: s0 + chunk] = _hash_steps(rows, ctx.hash_weights, ctx.hash_features)
        G[s0: s0 + chunk] = rows[:, steps_needed][..., keepf]
    pos = {int(s): k for k, s in enumerate(steps_needed)}

    def steps(rng_: range) -> np.ndarray:
        return G[:, [pos[s] for s in rng_]]

    okr = np.isfinite(H).all(axis=1) & ~np.all(H == H[:, :1], axis=1)
    return Subset(sub, H, okr, steps(range(p)), steps(range(t - p, t)), steps(range(t0 - p, t0)),
                  steps(range(t0, t0 + p)), (m_sub - 1) / max(n - 1, 1))


def _shuffled_windows(ctx: Context, s: Subset) -> LayoutVerdict | None:
    """``sliding_windows`` when rows share >= 2 exact steps with other rows of the subset far more
    often than fake rows (steps of random rows) do: shuffled sliding windows."""
    H, okr, sub, n, t, sc = s.H, s.ok, s.rows, ctx.n, ctx.t, ctx.scores
    m_sub = sub.size
    order = np.argsort(H[:, 0], kind="stable")
    ss = H[order, 0]
    best = _subset_overlaps(H, okr, H, ss, order, exclude_self=True)
    rate = float(np.mean(best[okr] > 0)) if okr.any() else 0.0
    # chance: fake rows made of steps of random rows overlap real rows only when the data
    # repeats whole patterns (quantised / constant stretches)
    nf = min(m_sub, 2048)
    fake = H[ctx.rng.integers(0, m_sub, (nf, t)), np.arange(t)[None, :]]
    fb = _subset_overlaps(fake, np.isfinite(fake).all(axis=1), H, ss, order, exclude_self=False)
    fake_rate = float(np.mean(fb > 0))
    sc.update(global_overlap_rate=rate, global_overlap_chance=fake_rate)
    hits = best[best > 0]
    if not (hits.size >= _MIN_EXACT_PAIRS and rate >= max(0.02, 10 * fake_rate) and (
            rate >= 0.5 or rate >= 0.25 * min(1.0, (t - 2) * s.frac_in))):
        return None
    vals, cnt = np.unique(hits, return_counts=True)
    common = vals[cnt >= max(2, 0.05 * hits.size)]
    stride = int(np.gcd.reduce(common)) if common.size else int(vals[np.argmax(cnt)])
    a = int(np.flatnonzero(best == (stride if stride in hits else hits[0]))[0])
    aa = int(sub[a])
    ev = (f"rows overlap but are not in order: e.g. a row starts {int(best[a])} step(s) into sample "
          f"{aa} (exact copies of its steps); {hits.size} of {int(okr.sum())} checked rows have an "
          f"overlapping row{' in a random subset' if m_sub < n else ''}: shuffled sliding windows "
          f"(stride ~{stride})")
    return ctx.verdict(SLIDING, stride=stride, stride_exact=False, evidence=ev + ".",
                       fix=("use statebatch.arrange_stateful(series, timesteps, batch_size) for "
                            "non-overlapping lanes in order, or stateful=False with shuffled "
                            "sliding windows."), confidence=0.9,
                       exact=fake_rate == 0.0 and sc.get("repeat_rate", 0.0) < 0.01)


def _search(ctx: Context, js: Junctions, s: Subset) -> Search:
    """The nearest row starts to each anchor's row end, and to a cut inside it among the other
    rows' starts at that cut (the null: same marginals, no continuation)."""
    jm, rng, b = js.jm, ctx.rng, ctx.batch_size
    Ssig = jm.start_sig(s.first)
    Esig = jm.end_sig(s.last)
    Msig = jm.end_sig(s.mid_left)
    Ssig_mid = jm.start_sig(s.mid_right)
    dim = Ssig.shape[1]
    if dim > 32:
        P = rng.standard_normal((dim, 32)) / math.sqrt(32)
        Ssig, Esig, Msig, Ssig_mid = Ssig @ P, Esig @ P, Msig @ P, Ssig_mid @ P
    okS = s.ok & np.isfinite(Ssig).all(axis=1)
    anchors = np.flatnonzero(s.ok & np.isfinite(Esig).all(axis=1) & np.isfinite(Msig).all(axis=1))
    if anchors.size > _GLOBAL_ANCHORS * ctx.max_rows:  # the search is anchors x subset: bound both
        anchors = np.sort(rng.choice(anchors, _GLOBAL_ANCHORS * ctx.max_rows, replace=False))
    rad = float(np.quantile(js.inside, 0.5))
    okM = s.ok & np.isfinite(Ssig_mid).all(axis=1)
    bid = s.rows // b
    gstart = np.flatnonzero(np.r_[True, bid[1:] != bid[:-1]])       # candidate groups = batches
    agg = b > 1 and gstart.size >= 4
    e = _nearest(Esig[anchors], Ssig, anchors, okS, rad, gstart if agg else None, rng if agg else None, _COH_K)
    m = _nearest(Msig[anchors], Ssig_mid, anchors, okM, rad, gstart if agg else None, None, 2)
    return Search(anchors, Esig[anchors], Msig[anchors], Ssig, Ssig_mid, okM, bid, gstart, agg, rad, e, m)


def _row_test(ctx: Context, s: Subset, sr: Search) -> dict[str, Any]:
    """More row starts within the median continuation score of row ends than of middle cuts?

    A true successor lies within that score half of the time, so with every row continued the
    excess would be ``0.5 * frac_in`` per row; ``power`` is that excess over the statistic's
    standard error: below ``_POWER_ROW`` a hidden successor may well be missed.
    """
    e_cnt, e_col, m_cnt, m_col = sr.e[2], sr.e[3], sr.m[2], sr.m[3]
    k, m_sub = sr.anchors.size, s.rows.size
    ce, cm = float(e_cnt.mean()), float(m_cnt.mean())
    est = (ce - cm) / max(0.5 * s.frac_in, 1e-9)
    # variance of a two-sample U statistic: anchor sums and candidate sums both vary
    var = np.var(e_cnt - m_cnt) / k + np.var(e_col - m_col) * m_sub / k ** 2
    z = (ce - cm) / math.sqrt(var + 0.25 / k ** 2)
    ctx.scores.update(shuffled_count_end=ce, shuffled_count_interior=cm, shuffled_z=z,
                      shuffled_fraction=est, shuffled_subset=int(m_sub))
    sd_row = (ce - cm) / z if z else math.sqrt(var + 0.25 / k ** 2)
    return dict(ce=ce, cm=cm, z=z, est=est, ok=z >= 4 and est >= 0.4 and (ce - cm) * k >= 8,
                power=0.5 * s.frac_in / max(sd_row, 1e-12))


def _batch_test(ctx: Context, sr: Search, s: Subset) -> dict[str, Any]:
    """Per batch: does one candidate batch hold far more row starts right after a batch's row ends
    than after its middle cuts (with shuffled lanes one batch holds the successors of a batch)?

    ``power``: the gain when each anchor batch's own interior continuations stand in for a
    successor batch (a planted alternative), over the standard error.
    """
    n, b = ctx.n, ctx.batch_size
    bid, gstart, anchors = sr.bid, sr.gstart, sr.anchors
    ab = bid[anchors]
    ast = np.flatnonzero(np.r_[True, ab[1:] != ab[:-1]])
    Ce = np.add.reduceat(sr.e[4], ast, axis=0)
    Cm = np.add.reduceat(sr.m[4], ast, axis=0)
    own = np.searchsorted(bid[gstart], ab[ast])
    # planted alternative for the power estimate: the own batch's interior starts, counting each
    # row's own continuation (a true successor at the cut), stand in for a successor batch
    dm_self = np.sum((sr.M - sr.SM[anchors]) ** 2, axis=1)
    self_within = (sr.okM[anchors] & (dm_self <= sr.rad)).astype(np.float64)
    planted = Cm[np.arange(ast.size), own] + np.add.reduceat(self_within, ast)
    Ce[np.arange(ast.size), own] = -np.inf
    Cm[np.arange(ast.size), own] = -np.inf
    diff = Ce.max(axis=1) - Cm.max(axis=1)
    nba = diff.size
    sd_b = math.sqrt(diff.var() / nba + 0.25 / nba ** 2)
    zb = float(diff.mean() / sd_b)
    rows_per = np.diff(np.r_[ast, ab.size])
    estb = float(diff.mean() / max(0.5 * np.mean(rows_per) * (gstart.size - 1) / max(n // b - 1, 1), 1e-9))
    ctx.scores.update(shuffled_batch_z=zb, shuffled_batch_fraction=estb)
    other = Cm.max(axis=1)
    gain = float(np.mean(np.maximum(planted, other) - other))
    power = gain * (gstart.size - 1) / max(n // b - 1, 1) / max(sd_b, 1e-12)
    return dict(z=zb, est=estb, ok=zb >= 5 and estb >= 0.1, power=power)


def _successor_test(ctx: Context, js: Junctions, s: Subset, sr: Search) -> dict[str, Any]:
    """Distinct best matches at row ends against middle cuts (:func:`_distinct_successors`),
    conclusive when far beyond the null and not at the lane order."""
    succ: dict[str, Any] = _distinct_successors(sr.E, sr.S, sr.e[5], sr.M, sr.SM, sr.m[5], js.q90,
                                                s.rows[sr.anchors], s.rows, ctx.batch_size)
    ctx.scores.update(successor_distinct_end=succ["end"], successor_distinct_interior=succ["interior"],
                      successor_z=succ["z"], successor_at_lane=succ["at_lane"])
    succ["ok"] = (succ["z"] >= _SUCCESSOR_Z and succ["end"] - succ["interior"] >= _SUCCESSOR_EFFECT
                  and succ["count"] >= 8 and succ["at_lane"] < 0.5)
    return succ


def _shuffled_verdict(ctx: Context, js: Junctions, s: Subset, sr: Search, row: dict, bat: dict | None,
                      succ: dict, coh_ok: bool) -> LayoutVerdict:
    """``shuffled_lanes``, with the tests that fired and an example junction."""
    b, n, sc, sub = ctx.batch_size, ctx.n, ctx.scores, s.rows
    e_best, e_arg = sr.e[0], sr.e[1]
    batch_ok = bat is not None and bat["ok"]
    counts = row["ok"] or batch_ok or coh_ok
    kk = int(np.argmin(np.abs(e_best - np.median(js.inside)) + 1e9 * (e_best > js.q90)))
    a, rr = int(sub[sr.anchors[kk]]), int(sub[e_arg[kk]])
    ev = (f"rows do continue other rows, just not row i of the next batch: e.g. sample {rr} ({_rc(rr, b)}) "
          f"picks up where sample {a} ({_rc(a, b)}) ends; "
          + (f"{succ['end']:.0%} of row ends have one distinct best-matching row start somewhere (a "
             f"continuation-like junction, the next-best start at least {1 / _SUCCESSOR_RATIO:.0f}x "
             f"farther), against {succ['interior']:.0%} of cuts inside rows among the other rows' "
             f"starts at that cut (paired z={succ['z']:.1f})" if succ["ok"] else "")
          + ("; " if succ["ok"] and counts else "")
          + ((f"row ends have more row starts right after "
              f"them than cuts inside rows do ({row['ce']:.2f} vs {row['cm']:.2f} per row, z={row['z']:.1f}"
              + (f"; per batch, z={bat['z']:.1f}: a whole batch holds the successors of a batch"
                 if bat is not None and batch_ok else "")
              + (f"; the best-matching starts of one batch's row ends gather in one other batch, "
                 f"z={sc['coherence_z']:.1f} against the same rows with batch labels permuted" if coh_ok else "")
              + ")") if counts else "")
          + f" among {sr.anchors.size} checked rows"
          f"{' and a random subset of ' + str(sub.size) + ' rows' if sub.size < n else ''}, while row i -> "
          f"row i of the next batch looks unrelated ({js.related_lanes:.2f}; 0.5 = random)")
    conf = max(row["est"] if row["ok"] else 0, bat["est"] if bat is not None and batch_ok else 0,
               0.5 if coh_ok else 0, succ["end"] - succ["interior"] if succ["ok"] else 0)
    return ctx.verdict(SHUFFLED, evidence=ev + ".", fix=_SHUFFLED_FIX, confidence=float(np.clip(conf, 0, 1)))


def _no_successor_verdict(ctx: Context, js: Junctions, sr: Search, row: dict, bat: dict | None) -> LayoutVerdict:
    """``undetermined`` when the search had too little power to find a hidden successor (rows
    shuffled one by one have no batch structure for the per-batch test to see), else
    ``independent``: no row continues any other."""
    n, t, sc = ctx.n, ctx.t, ctx.scores
    cN, cL, sig = js.related_natural, js.related_lanes, js.signal
    if row["power"] < _POWER_ROW:
        ev = (f"no row continues row i of the next batch ({cL:.2f}) or the next sample ({cN:.2f}; 0.5 = like "
              f"random rows), although values are continuous inside rows ({sig:.2f}); rows might still "
              f"continue other rows in a shuffled order, but with {n} rows of {t} step(s) x "
              f"{ctx.n_keep} feature(s) a row boundary carries too little information to find a hidden "
              f"successor among the others (expected z {row['power']:.1f}"
              + (f", per batch {bat['power']:.1f}" if bat is not None else "") + f"; {_POWER_ROW:.0f} needed)"
              + (f", and the best-matching starts of a batch's row ends do not gather in one other batch "
                 f"(z={sc['coherence_z']:.1f} against permuted batch labels; 5 needed)" if "coherence_z" in sc else "")
              + ": shuffled lanes and independent samples cannot be told apart here, and this is not "
              "evidence that the rows are independent")
        return ctx.verdict(UNDETERMINED, evidence=ev + ".", fix=_UNDECIDED_FIX, confidence=0.0)
    ev = (f"no row looks like the continuation of another: row i -> row i of the next batch {cL:.2f}, "
          f"sample j -> j+1 {cN:.2f} (0.5 = like random rows), and row ends have no more row starts right "
          f"after them than cuts inside rows ({row['ce']:.2f} vs {row['cm']:.2f} per row, {sr.anchors.size} "
          f"rows, z={row['z']:.1f}"
          + (f"; per batch z={bat['z']:.1f}" if bat is not None else "") + "), although values are "
          f"continuous inside rows ({sig:.2f}). Independent samples: fine for a stateless model; a "
          f"stateful one carries state between unrelated samples")
    return ctx.verdict(INDEPENDENT, evidence=ev + ".", fix=(
        "if the samples are unrelated, use stateful=False (or reset states after every batch); for "
        "long series, arrange them in lanes with statebatch.arrange_stateful."),
        confidence=_conf(sig))


def _distinct_successors(E: np.ndarray, S: np.ndarray, e_top: np.ndarray, M: np.ndarray, SM: np.ndarray,
                         m_top: np.ndarray, q90: float, rows: np.ndarray, sub: np.ndarray,
                         b: int) -> dict[str, float]:
    """Do row ends have one *distinct* best-matching row start anywhere (a hidden successor), more
    often than cuts inside rows have one among the other rows' starts at that cut?

    A row end's match is distinct when its junction score is like a continuation inside a row
    (<= the 90% quantile of those) and the second-best start is at least 1/ratio times farther
    (``_SUCCESSOR_RATIO``). The ratio of the nearest two distances does not depend on how densely
    the starts lie around the end (for locally even data it is uniform-like whatever the scale),
    so rows that all start and end at one level (recordings at rest: many starts equally close)
    give *no* distinct matches at their ends, rather than many close ones. The null: the same
    for a cut inside each row against the other rows' starts at that cut (no row continues
    another's interior). Shuffled lanes: each row end has its successor somewhere, distinct
    whenever the boundary carries enough information. Returns the shares of distinct matches at
    ends and at cuts, the paired z, the count at ends, and the share of distinct end matches that
    sit at sample j+B (the lane order; then the rows are not shuffled).

    E, S : ``(k, D)`` anchor row-end signatures, ``(m, D)`` row-start signatures of the subset;
    e_top : ``(k, >=2)`` indices of the nearest starts; M, SM, m_top : the same at a cut inside
    rows; rows : ``(k,)`` the anchors' sample numbers; sub : ``(m,)`` the subset's sample numbers.
    """
    def distinct(Q: np.ndarray, P: np.ndarray, top: np.ndarray) -> np.ndarray:
        d1 = np.sum((Q - P[top[:, 0]]) ** 2, axis=1)
        d2 = np.sum((Q - P[top[:, 1]]) ** 2, axis=1)
        ok = np.isfinite(d1) & np.isfinite(d2) & (top[:, 0] != top[:, 1])
        return ok & (d1 <= q90) & (d1 < _SUCCESSOR_RATIO * d2)

    de, dm = distinct(E, S, e_top), distinct(M, SM, m_top)

    k = max(de.size, 1)
    diff = de.astype(np.float64) - dm
    sd = max(float(diff.std()), 0.5 / math.sqrt(k))
    z = float(diff.mean() / (sd / math.sqrt(k))) if de.size else 0.0
    at_lane = float(np.mean(sub[e_top[de, 0]] == rows[de] + b)) if de.any() else 0.0
    return dict(end=float(de.mean()) if de.size else 0.0, interior=float(dm.mean()) if dm.size else 0.0,
                z=z, count=int(de.sum()), at_lane=at_lane)


def _global_t1(ctx: Context) -> LayoutVerdict:
    """One step per row, neither lanes nor natural order: do the rows of a batch have their
    nearest neighbours (their predecessors or successors in time) gathered in one other batch?

    With one step per row there is no step inside a row to compare a junction with, so a row's
    successor cannot be told from a row that merely has similar values. What shuffled lanes still
    show is batch structure: batch k holds step k of every lane, so the nearest neighbours of its
    rows (steps k-1 and k+1 of the same lanes) sit together in one or two batches. Independent
    samples, in whatever order, show that only as often as randomly permuted batch labels do.
    """
    # half the subset of the T >= 2 search: one point per row is cheap to read, but the search is
    # quadratic in the subset, and batch structure shows in fewer rows
    X, b, n, keepf, rng, sc = ctx.X, ctx.batch_size, ctx.n, ctx.keep, ctx.rng, ctx.scores
    sub = _row_subset(n, b, min(n, 2 * ctx.max_rows), rng)
    Q = np.asarray(X[sub], dtype=np.float64)[:, 0][:, keepf]
    ok = np.asarray(np.isfinite(Q).all(axis=1))
    Q = np.where(ok[:, None], Q, 0.0) / _rms_scale(Q[ok])
    anchors = np.flatnonzero(ok)
    bid = sub // b
    nb = np.unique(bid).size
    f = int(keepf.sum())
    cN, cL = sc.get("related_natural", 0.5), sc.get("related_lanes", 0.5)
    head = (f"one step per row, and neither sample j+1 ({cN:.2f}) nor row i of the next batch ({cL:.2f}; "
            f"0.5 = like random rows) is closer than random rows")
    if nb < 4 or anchors.size < _MIN_STAT_PAIRS:
        return ctx.verdict(UNDETERMINED, evidence=head + f"; too few batches ({nb}) to look for shuffled "
                             "lanes.")
    coh = _batch_coherence(bid, np.repeat(anchors, _COH_K), _nearest_top(Q[anchors], Q, anchors, ok, rng).ravel(),
                           rng)
    sc.update(coherence_z=coh["z"], coherence_effect=coh["effect"], coherence_own_z=coh["z_own"],
              shuffled_subset=int(sub.size))
    where = f" among {anchors.size} rows" + (f" (a random subset of {sub.size})" if sub.size < n else "")
    if _coherent(coh):
        ev = (head + f"; but the nearest neighbours of one batch's rows gather in one other batch "
              f"(z={coh['z']:.1f} against the same rows with batch labels permuted{where}): each batch "
              "holds neighbouring steps of the rows of another batch, i.e. lanes of a series with the "
              "batches (and rows) shuffled")
        return ctx.verdict(SHUFFLED, evidence=ev + ".", fix=_SHUFFLED_FIX,
                             confidence=float(np.clip(0.5 + coh["effect"], 0, 1)))
    ev = (head + f"; the nearest neighbours of a batch's rows do not gather in one other batch either "
          f"(z={coh['z']:.1f} against permuted batch labels{where}; {_COHERENCE_Z:.0f} needed). With one "
          f"step of {f} feature(s) per row nothing inside a row shows what a step looks like, so a hidden "
          "successor cannot be told from a row with similar values: shuffled lanes and independent "
          "samples cannot be told apart here, and this is not evidence that the rows are independent")
    return ctx.verdict(UNDETERMINED, evidence=ev + ".", fix=(
        "if these rows are steps of longer series, keep them in lane order (row i of batch k+1 "
        "continues row i of batch k; statebatch.arrange_stateful builds that); if they are unrelated "
        "samples, use stateful=False."))
