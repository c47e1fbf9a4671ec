"""Exact evidence: whole timesteps shared between rows, and statebatch's own provenance record.

Every step is hashed to one float64 (a fixed random combination of its features), so equal steps
get bit-equal hashes whatever array they come from; rows are compared at their boundaries only
(the successor maps ``j -> j+1`` and ``j -> j+B``, or a sorted index of first steps), never all
pairs. Shared steps beyond what chance repeats (quantised values) explain are proof of sliding
windows; a provenance record (:func:`~statebatch.results.provenance.provenance_of`) is proof of the
layout statebatch made.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable

import numpy as np

from ...results.provenance import INDEPENDENT, LANES, NATURAL, SHUFFLED, SLIDING, Provenance
from .verdict import Context, LayoutVerdict, _lane_order, _natural_fix, _rc

_MIN_EXACT_PAIRS = 5      # exact (hash) evidence is conclusive with few pairs


def _hash_steps(rows: np.ndarray, w: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """One float64 per step: a fixed random combination of the step's features.

    Elementwise float64 arithmetic in a fixed order, so equal steps get bit-equal hashes whatever
    the array they come from. NaN never matches.
    """
    h = rows[..., feats[0]].astype(np.float64) * w[0]
    for k in range(1, feats.size):
        h = h + rows[..., feats[k]].astype(np.float64) * w[k]
    return h


def _overlap_shifts(ha: np.ndarray, hb: np.ndarray, min_len: int = 1) -> np.ndarray:
    """For each pair: the smallest s in 1..T-min_len with hb[:T-s] == ha[s:] (b starts s steps
    after a starts, sharing T-s steps), or 0."""
    s_count, t = ha.shape
    out = np.zeros(s_count, dtype=np.int64)
    for s in range(1, t - min_len + 1):
        cand = (out == 0) & (hb[:, 0] == ha[:, s])
        if not cand.any():
            continue
        idx = np.flatnonzero(cand)
        ok = np.all(hb[idx, : t - s] == ha[idx, s:], axis=1)
        out[idx[ok]] = s
    return out


def _exact_maps(HA: np.ndarray, HN: np.ndarray, HL: np.ndarray, HR: np.ndarray, okA: np.ndarray,
                finite: Callable, const: Callable, b: int, t: int) -> dict:
    """Exact overlaps (shared whole steps) along j -> j+1 and j -> j+B, against random pairs and
    against repeats inside rows (quantised data); ``verdict`` when one map overlaps conclusively."""
    out: dict[str, Any] = {}
    if t < 2:
        return out
    # chance of a repeat inside rows (quantised data): P(step t+1 == step t)
    rep1 = float(np.mean(HA[okA][:, 1:] == HA[okA][:, :-1])) if okA.any() else 0.0
    out["repeat_rate"] = rep1
    ok_r = okA & finite(HR) & ~const(HR)
    sr = _overlap_shifts(HA[ok_r], HR[ok_r])
    base = float(np.mean(sr > 0)) if sr.size else 0.0
    out["overlap_random"] = base
    maps = [("natural", HN)] + ([("lanes", HL)] if b > 1 else [])
    for name, HB in maps:
        ok = okA & finite(HB) & ~const(HB)
        if ok.sum() < _MIN_EXACT_PAIRS:
            continue
        sh = _overlap_shifts(HA[ok], HB[ok])
        hits = sh > 0
        rate = float(hits.mean())
        out[f"overlap_{name}"] = rate
        if not hits.any():
            continue
        s_mode = int(np.bincount(sh[hits]).argmax())
        ov = t - s_mode
        chance = rep1 ** ov
        if 2 * ov <= t:
            chance = max(chance, float(np.mean(np.all(HA[okA][:, :ov] == HA[okA][:, ov:2 * ov], axis=1))))
        if rate >= 0.5 and rate >= base + 0.3 and rate >= 2 * chance + 0.3:
            first = int(np.flatnonzero(ok)[np.flatnonzero(sh == s_mode)[0]])
            out.setdefault("verdict", (name, s_mode, int(hits.sum()), int(ok.sum()), first, rate))
            # how unlikely so many hits are by chance (a Chernoff bound: -log p >= tot * KL(rate || chance))
            c = min(max(chance, base, 1e-12), 1 - 1e-12)
            r = min(rate, 1 - 1e-12)
            out.setdefault("verdict_neglog_p", float(ok.sum()) * (r * math.log(r / c)
                                                                   + (1 - r) * math.log((1 - r) / (1 - c))))
    return out


def _exact_verdict(ctx: Context, exact: dict, j: np.ndarray) -> LayoutVerdict:
    """``sliding_windows`` from the conclusive map of :func:`_exact_maps` (anchors ``j``)."""
    b, n, t = ctx.batch_size, ctx.n, ctx.t
    name, s, hits, tot, first, rate = exact["verdict"]
    a = int(j[first])
    if name == "natural":
        ev = (f"sample {a + 1} starts {s} step(s) after sample {a} (its first {t - s} step(s) are exact "
              f"copies of the last {t - s} of sample {a}) in {hits} of {tot} sampled pairs: overlapping "
              f"sliding windows with stride {s}")
        if b > 1:
            ev += (f"; a stateful model carries the state of row i into row i of the next batch, i.e. "
                   f"from sample j to sample j+{b}, which starts {s * b} steps later")
        ev += "."
    else:
        ev = (f"{_rc(a + b, b)} (sample {a + b}) is {_rc(a, b)} (sample {a}) shifted by {s} step(s) "
              f"({t - s} shared steps) in {hits} of {tot} sampled pairs: sliding windows arranged in "
              f"lanes, so the model sees the shared steps twice.")
    order = None
    fix = ("use statebatch.arrange_stateful(series, timesteps, batch_size) to cut the series into "
           "non-overlapping lanes, or use stateful=False with sliding windows")
    if name == "natural" and t % s == 0:
        sel = np.arange(0, n, t // s)
        order = _lane_order(sel, b)
        if order is not None:
            fix += (f"; from these windows, X[order] with order = statebatch.detect_layout(X, {b}).order "
                    f"(every {t // s}-th window, regrouped into {b} lanes, dropping the overlaps; the same "
                    "for y) is a correct stateful layout")
    # bit-equal shared steps are proof when chance repeats (quantised values, constant stretches) cannot
    # explain that many of them: p < 1e-13
    proof = exact.get("verdict_neglog_p", 0.0) >= 30.0
    return ctx.verdict(SLIDING, stride=s, stride_exact=True, evidence=ev, fix=fix + ".", order=order,
                         confidence=float(min(1.0, rate)), exact=proof)


def _subset_overlaps(Hq: np.ndarray, okq: np.ndarray, H: np.ndarray, ss: np.ndarray, order: np.ndarray,
                     exclude_self: bool) -> np.ndarray:
    """For each query row: the smallest s (1..T-2) such that some row of H starts at its step s and
    copies its steps s.. (>= 2 shared steps), or 0."""
    m, t = Hq.shape
    best = np.zeros(m, dtype=np.int64)
    for s in range(1, t - 1):
        todo = np.flatnonzero((best == 0) & okq)
        if todo.size == 0:
            break
        k = np.minimum(np.searchsorted(ss, Hq[todo, s]), ss.size - 1)
        hit = ss[k] == Hq[todo, s]
        if not hit.any():
            continue
        a_idx, r_idx = todo[hit], order[k[hit]]
        valid = np.all(H[r_idx, : t - s] == Hq[a_idx, s:], axis=1)
        if exclude_self:
            valid &= r_idx != a_idx
        best[a_idx[valid]] = s
    return best


def _provenance_verdict(X: np.ndarray, b: int, prov: Provenance, rows: np.ndarray | None) -> LayoutVerdict | None:
    """The exact verdict for an array statebatch made (or whose rows are rows of one)."""
    n = X.shape[0]
    made = f"X was made by statebatch.{prov.maker}"
    # every verdict here is exact: statebatch's own record, all rows accounted for
    made_v = partial(LayoutVerdict, batch_size=b, n_rows=n, rows_checked=n, confidence=1.0, exact=True,
                     scores={"provenance": prov.maker})
    if rows is not None:
        ok = rows >= 0
        if prov.kind != LANES or prov.batch_size is None:
            return None
        pb = prov.batch_size
        # lanes: row r's successor is r + pb (its lane in the next batch); X is in lane order for
        # batch size b when row j+b is the successor of row j wherever both are known
        j = np.flatnonzero(ok[: n - b] & ok[b:]) if n > b else np.zeros(0, int)
        if j.size == 0:
            return None
        cont = rows[j + b] == rows[j] + pb
        if cont.all() and b == pb:
            return made_v(LANES, evidence=(
                f"{made} (lanes for batch size {pb}); the rows are those rows in lane order."))
        same_batch = np.all(rows[ok] // pb == np.flatnonzero(ok) // b) if b == pb else False
        k = int(j[np.flatnonzero(~cont)[0]]) if (~cont).any() else int(j[0])
        if same_batch:
            what = (f"the rows of its batches were permuted inside each batch: e.g. {_rc(k, b)} holds lane "
                    f"{rows[k] % pb} and {_rc(k + b, b)} lane {rows[k + b] % pb}, so row i of batch k+1 no "
                    f"longer continues row i of batch k")
        else:
            what = (f"its rows were reordered (e.g. shuffled, as model.fit(shuffle=True) does): sample {k} is row "
                    f"{rows[k]} of the original and sample {k + b} is row {rows[k + b]}, not its successor "
                    f"{rows[k] + pb}; {int((~cont).sum())} of {j.size} rows do not continue into row i of the "
                    "next batch")
        return made_v(SHUFFLED, evidence=f"{made} (lanes for batch size {pb}), but {what}.",
                             fix=f"use the arrays statebatch made in their order, with batch_size={pb} and "
                                 "shuffle=False (Arranged.fit_kwargs() gives both).")
    if prov.kind == LANES:
        lb = prov.batch_size
        if lb == b:
            rs = f", {prov.resets} mid-epoch lane reset(s) (where a lane moves on to a new series)" if prov.resets else ""
            # a plain model.fit on these arrays neither resets those lanes nor weighs out their padding
            fix = ("feed them with statebatch.keras.fit_stateful(model, arranged) (or LaneResetCallback(arranged) "
                   "and the arrangement's sample weights), so that the lanes are reset where a new series starts "
                   "and padded steps weigh nothing.") if prov.resets else ""
            return made_v(LANES, evidence=(
                f"{made}: lanes for batch size {lb}, {prov.timesteps} step(s) per row{rs}; row i of batch k+1 "
                "continues row i of batch k by construction."), fix=fix)
        return made_v(SHUFFLED, evidence=(
            f"{made} as lanes for batch size {lb}, but is read with batch size {b}: row i of batch k+1 then "
            f"holds another lane's chunk, not the continuation of row i."),
            fix=f"pass batch_size={lb} (or arrange again with batch_size={b}).")
    if prov.kind == INDEPENDENT:
        return made_v(INDEPENDENT, evidence=(
            f"{made}: one sequence per row, so no row continues another; fine for a stateless model, a "
            "stateful one would carry state between unrelated sequences."),
            fix="use stateful=False (or reset states after every batch).")
    st, t = prov.stride, prov.timesteps
    if st is not None and st == t and b == 1:
        return made_v(LANES, stride=t, stride_exact=True, evidence=(
            f"{made} with stride = timesteps = {t}: consecutive chunks, which with batch size 1 is the lane "
            "order" + (" (with a reset needed where each new series starts)" if prov.n_series > 1 else "") + "."))
    if st is not None and st == t:
        order = _lane_order(np.arange(n), b) if n % b == 0 else None
        return made_v(NATURAL, stride=t, stride_exact=True, evidence=(
            f"{made} with stride = timesteps = {t}: consecutive chunks in natural order, so a stateful model "
            f"with batch size {b} carries the state of sample j into sample j+{b}, {b * t} steps later."),
            fix=_natural_fix(n, b, order), order=order)
    gap = "overlapping" if st is not None and st < t else "with gaps between them"
    return made_v(SLIDING, stride=st, stride_exact=True, evidence=(
        f"{made}: sliding windows of {t} step(s) with stride {st}, {gap}; not lanes."),
        fix=("use statebatch.arrange_stateful(series, timesteps, batch_size) to cut the series into "
             "non-overlapping lanes, or use stateful=False with sliding windows."))
