"""Statistical continuity along the two successor maps: lanes (``j -> j+B``) and natural order (``j -> j+1``).

A junction between the end of one row and the start of another is scored by the junction model
(:mod:`.junction`); the scores of each candidate map are compared by ranks with cuts inside rows
(true continuations) and with random rows (no relation). With one step per row there is no inside
of a row, so lanes and natural order are told apart by which neighbour is closer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...results.provenance import LANES, NATURAL, SLIDING, UNDETERMINED
from .junction import _Junction
from .permuted import _next_batch, _permuted_verdict
from .ranks import _auc, _auc_se, _paired_less, _rms_scale
from .verdict import Anchors, Context, LayoutVerdict, _conf, _lane_order, _natural_fix, _rc


def _detect_t1(ctx: Context, anc: Anchors) -> LayoutVerdict:
    """One step per row: lanes and natural order told apart by which neighbour is closer."""
    A, N, L, R = anc.A, anc.N, anc.L, anc.R
    b, n = ctx.batch_size, ctx.n
    sd = _rms_scale(A)
    dist = lambda P, Q: np.sum(((Q[:, 0] - P[:, 0]) / sd) ** 2, axis=-1)   # noqa: E731
    dN, dL, dR = dist(A, N), dist(A, L), dist(A, R)
    m = dN.size
    cN = _auc(dN, dR)
    cL = _auc(dL, dR) if b > 1 else cN
    seN, seL = _auc_se(cN, m, m), _auc_se(cL, m, m)
    q, qse = _paired_less(dL, dN) if b > 1 else (0.5, 0.0)
    ctx.scores.update(related_natural=cN, related_lanes=cL, lanes_vs_natural=q)
    relN = cN - 0.5 >= max(0.15, 4 * seN)
    relL = cL - 0.5 >= max(0.15, 4 * seL)
    note = " (one step per row: lanes and natural order are told apart by which neighbour is closer)"
    if b == 1:
        if relN:
            return ctx.verdict(LANES, evidence=f"sample j+1 is close to sample j ({cN:.0%} of sampled "
                                 f"pairs closer than random pairs); with batch size 1 that is the lane order.",
                                 confidence=_conf(cN))
        return ctx.verdict(UNDETERMINED, evidence=(
            f"one step per row, and sample j+1 is no closer to sample j than random rows ({cN:.2f}; 0.5 = "
            "like random rows). With batch size 1 there is no batch structure to pool over and nothing "
            "inside a row shows what a step looks like: the steps of a series in shuffled order and "
            "independent samples are both rows in random order, and the shape of the point cloud alone "
            "cannot show a hidden successor (independent draws of features that depend on one latent "
            "value lie on a curve too), so noise, shuffled lanes and independent samples cannot be told "
            "apart here, and this is not evidence that the rows are independent."),
            fix=("if these rows are steps of one series, keep them in time order; if they are unrelated "
                 "samples, use stateful=False."))
    if (relL or relN) and abs(q - 0.5) >= max(0.08, 4 * qse):
        if q > 0.5:
            return ctx.verdict(LANES, evidence=f"row i of batch k+1 is closer to row i of batch k than "
                                 f"sample j+1 is to sample j in {q:.0%} of {m} sampled rows{note}.",
                                 confidence=_conf(cL))
        order = _lane_order(np.arange(n), b) if n % b == 0 else None
        return ctx.verdict(NATURAL, stride=1, evidence=f"sample j+1 is closer to sample j than row i of "
                             f"the next batch is in {1 - q:.0%} of {m} sampled rows{note}; with one step "
                             "per row this is also what windows of any stride look like.",
                             fix=_natural_fix(n, b, order), order=order, confidence=_conf(cN))
    return ctx.verdict(UNDETERMINED, evidence=f"one step per row; consecutive rows (j->j+1: {cN:.2f}, "
                         f"j->j+{b}: {cL:.2f}, 0.5 = like random rows) give no clear order.")


@dataclass(frozen=True)
class Junctions:
    """The junction scores of one detection (T >= 2) and what the rank tests read from them.

    jm : the fitted junction model; inside : ``(S * cuts,)`` scores of cuts inside rows (true
    continuations); q90 : their 90% quantile; signal : AUC of inside against random junctions
    (0.5: no continuity); d_natural, d_lanes : ``(S,)`` scores of ``j -> j+1`` and ``j -> j+B``;
    related_* : their AUCs against random junctions, ``se_*`` its standard error; continues_* : the
    share of continuation-like junctions beyond random ones; low_q_* : their 20% quantile over
    that of inside junctions.
    """

    jm: _Junction
    inside: np.ndarray
    q90: float
    signal: float
    signal_se: float
    d_natural: np.ndarray
    d_lanes: np.ndarray
    related_natural: float
    se_natural: float
    continues_natural: float
    low_q_natural: float
    related_lanes: float
    se_lanes: float
    continues_lanes: float
    low_q_lanes: float


def _junction_stats(ctx: Context, anc: Anchors) -> Junctions:
    """Fit the junction model on the anchor rows and score the junctions of each successor map
    against cuts inside rows and random rows."""
    A, N, L, R = anc.A, anc.N, anc.L, anc.R
    b, t = ctx.batch_size, ctx.t
    p = min(2, t // 2)
    jm = _Junction(A, p)
    # reference: cuts inside rows (true continuations), up to 4 per row
    cuts = np.arange(p, t - p + 1)
    if cuts.size > 4:
        cuts = np.unique(np.linspace(p, t - p, 4).round().astype(int))
    Wd = np.concatenate([jm.score(A[:, c - p: c], A[:, c: c + p]) for c in cuts])
    dN = jm.score(A[:, -p:], N[:, :p])
    dL = jm.score(A[:, -p:], L[:, :p]) if b > 1 else dN
    dR = jm.score(A[:, -p:], R[:, :p])
    sig = _auc(Wd, dR)
    sc = ctx.scores
    sc.update(signal=sig, p=p)
    q90 = float(np.quantile(Wd, 0.9))
    q20w = float(np.quantile(Wd, 0.2))
    fR = float(np.mean(dR <= q90))

    def stats(d: np.ndarray) -> tuple[float, float, float, float]:
        c = _auc(d, dR)
        cont = (float(np.mean(d <= q90)) - fR) / max(0.9 - fR, 1e-9)
        qr = float(np.quantile(d, 0.2)) / max(q20w, 1e-300)
        return c, _auc_se(c, d.size, dR.size), cont, qr

    cN, seN, contN, qrN = stats(dN)
    cL, seL, contL, qrL = stats(dL)
    sc.update(related_natural=cN, related_lanes=cL, continues_natural=contN, continues_lanes=contL,
              low_quantile_ratio_natural=qrN, low_quantile_ratio_lanes=qrL)
    return Junctions(jm, Wd, q90, sig, _auc_se(sig, Wd.size, dR.size), dN, dL, cN, seN, contN, qrN,
                     cL, seL, contL, qrL)


def _no_signal(ctx: Context, js: Junctions) -> LayoutVerdict | None:
    """``undetermined`` when steps inside rows are no more alike than steps of random rows."""
    sig = js.signal
    if sig - 0.5 < max(0.2, 4 * js.signal_se):
        return ctx.verdict(UNDETERMINED, evidence=(
            f"no continuity signal: a step inside a row is no more alike its neighbour than steps of "
            f"random rows (score {sig:.2f}; 0.5 = white noise), so row order cannot be read from "
            f"the values, and no rows share exact steps."))
    return None


def _map_verdict(ctx: Context, anc: Anchors, js: Junctions) -> LayoutVerdict | None:
    """The verdict when one successor map relates (lanes, natural order, natural order with gaps),
    or rows permuted inside batches; None when neither map relates (then successors are looked
    for anywhere)."""
    A, N, jj, Wd = anc.A, anc.N, anc.rows, js.inside
    b, n, t = ctx.batch_size, ctx.n, ctx.t
    dN, dL, cN, cL = js.d_natural, js.d_lanes, js.related_natural, js.related_lanes
    seN, seL, contN, contL = js.se_natural, js.se_lanes, js.continues_natural, js.continues_lanes
    qrN, qrL = js.low_q_natural, js.low_q_lanes
    sc = ctx.scores
    relN = cN - 0.5 >= max(0.1, 4 * seN)
    relL = cL - 0.5 >= max(0.1, 4 * seL)
    isN = relN and contN >= 0.5 and qrN <= 2.5
    isL = relL and contL >= 0.5 and qrL <= 2.5
    m = dN.size

    def ex(d: np.ndarray) -> int:  # an example anchor with a typical continuation junction
        k = int(np.argmin(np.abs(d - np.median(Wd))))
        return int(jj[k])

    if b > 1 and isL and isN:
        q, _ = _paired_less(dL, dN)
        isL, isN = q >= 0.5, q < 0.5
    if (isL or relL) and not isN and not relN and b > 1 and ctx.global_pass:
        # row i -> row i of the next batch relates; is that only because some batches kept their order
        # (rows permuted inside batches: with small B many permutations leave rows in place)?
        pv = _permuted_verdict(_next_batch(ctx, js.jm), ctx)
        if pv is not None:
            return pv
    if isL or (b == 1 and isN):
        a = ex(dL)
        resets = max(0.0, 1.0 - contL)
        ev = (f"{_rc(a + b, b)} (sample {a + b}) picks up where {_rc(a, b)} (sample {a}) ends: the jump "
              f"between them is like an ordinary step inside a row; row i -> row i of the next batch "
              f"continues in ~{min(contL, 1):.0%} of {m} sampled pairs")
        if b > 1:
            ev += f", sample j -> j+1 in ~{max(contN, 0):.0%}"
        if resets >= 0.1:
            ev += f" (~{resets:.0%} of lanes restart: resets or new series)"
        return ctx.verdict(LANES, evidence=ev + ".", confidence=_conf(cL) * min(1.0, contL + 0.2))
    if isN:
        a = ex(dN)
        order = _lane_order(np.arange(n), b) if n % b == 0 else None
        ev = (f"sample {a + 1} starts right after sample {a} ends (the jump is like an ordinary step) in "
              f"~{min(contN, 1):.0%} of {m} sampled pairs, but row i of batch k+1 (sample j+{b}) continues "
              f"row i of batch k in only ~{max(contL, 0):.0%}: consecutive chunks in natural order, so "
              f"the state of sample j flows into sample j+{b}, {b * t} steps later")
        return ctx.verdict(NATURAL, stride=t, stride_exact=True, evidence=ev + ".",
                             fix=_natural_fix(n, b, order), order=order,
                             confidence=_conf(cN) * min(1.0, contN + 0.2))
    # sample j+1 related to sample j without continuing it: natural order with gaps. (In lanes,
    # sample j+1 is another lane -- another part of the series, or another series -- and unrelated,
    # so relN decides even when j -> j+B relates too, as it does for quasi-periodic series.)
    if relN:
        a = ex(dN)
        g = _gap_estimate(A, N, t)
        sc["gap_estimate"] = g
        stride = int(round(t - 1 + g)) if g is not None else None
        ev = (f"sample j+1 follows sample j with a gap: the jump from the end of sample {a} to the start "
              f"of sample {a + 1} is larger than an ordinary step but far smaller than between random "
              f"rows ({cN:.0%} of {m} sampled pairs closer than random pairs, ~{max(contN, 0):.0%} look "
              f"like a plain continuation)")
        ev += (f"; the gap looks like ~{g:.0f} steps, i.e. windows with stride ~{stride} > timesteps={t}"
               if g is not None else f"; windows with a stride larger than timesteps={t}")
        fix = ("the windows skip steps, so the state would jump over the gaps: cut the full series with "
               "statebatch.arrange_stateful(series, timesteps, batch_size), or use stateful=False")
        return ctx.verdict(SLIDING, stride=stride, stride_exact=False, evidence=ev + ".", fix=fix + ".",
                             confidence=_conf(cN))
    if relL:
        a = ex(dL)
        ev = (f"row i of batch k+1 is related to row i of batch k ({cL:.0%} of {m} sampled pairs closer "
              f"than random rows, e.g. {_rc(a, b)} -> {_rc(a + b, b)}), though only ~{max(contL, 0):.0%} "
              f"look like a plain continuation (many resets, or gaps between the chunks of a lane)")
        return ctx.verdict(LANES, evidence=ev + ".", confidence=0.5 * _conf(cL))
    return None


def _gap_estimate(A: np.ndarray, N: np.ndarray, t: int) -> float | None:
    """Steps from the last step of sample j to the first of sample j+1, from the lag-h structure
    function inside rows (interpolated, or extrapolated on log-log axes)."""
    sd = _rms_scale(np.diff(A, axis=1))
    D = np.array([np.median(np.sum(((A[:, h:] - A[:, :-h]) / sd) ** 2, axis=-1)) for h in range(1, t)])
    dj = float(np.median(np.sum(((N[:, 0] - A[:, -1]) / sd) ** 2, axis=-1)))
    hs = np.arange(1, t)
    if dj <= D[0]:
        return 1.0
    if dj <= D.max():
        k = int(np.argmax(D >= dj))
        lo, hi = D[k - 1], D[k]
        fr = (math.log(dj) - math.log(lo)) / max(math.log(hi) - math.log(lo), 1e-12)
        return float(math.exp(math.log(hs[k - 1]) + fr * (math.log(hs[k]) - math.log(hs[k - 1]))))
    # saturating structure function (AR-like: D(h) = c (1 - r^h)), seen as shrinking increments:
    # extrapolate along it, since a power law through a saturating curve overshoots the gap
    inc = np.diff(np.r_[0.0, D])
    pos = inc > 0
    r = 1.0
    if inc.size >= 2 and pos.sum() >= 2:
        # log increments fall linearly in h for D(h) = c (1 - r^h): fit the rate over all lags
        r = float(np.exp(np.polyfit(hs[pos], np.log(inc[pos]), 1)[0]))
    if pos.all() and 0 < r < 0.95:
        last_inc = float(np.exp(np.mean(np.log(inc) - np.log(r) * hs)) * r ** hs[-1])
        c = float(D[-1] + last_inc * r / (1 - r))          # the limit of D(h)
        if dj < c:
            return float(hs[-1] + math.log(1 - (dj - D[-1]) / (c - D[-1])) / math.log(r))
        return None
    if t - 1 == 1:
        slope = 1.0
    else:
        sel = hs >= max(1, (t - 1) // 2)
        slope = float(np.polyfit(np.log(hs[sel]), np.log(D[sel]), 1)[0])
    if slope < 0.15:
        return None
    g = (t - 1) * (dj / D[-1]) ** (1.0 / slope)
    return float(g) if g < 1000 * t else None
