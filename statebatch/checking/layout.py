"""Layout detection: read from the data alone how the rows of stateful-RNN input are laid out.

A stateful recurrent layer with batch size B keeps B states; row i of batch k+1 must *continue* row i
of batch k. :func:`detect_layout` looks at ``X`` (samples, timesteps, features) and says which
arrangement it has (a :class:`LayoutVerdict` with evidence, fix and, where one exists, the
permutation that turns it into lanes):

====================  ===========================================================================
``lanes``             row i of batch k+1 continues row i of batch k (correct; resets allowed)
``natural_order_chunks``  sample j+1 continues sample j (non-overlapping chunks in series order)
``sliding_windows``   sample j+1 starts ``stride`` steps after sample j (overlaps, or gaps)
``shuffled_lanes``    rows continue other rows, but not row i -> row i of the next batch
``independent``       no row continues another, although values are continuous inside rows
``undetermined``      the data cannot tell: white noise, constant data, too few rows, or too
                      little information at row boundaries to find a hidden successor
``channels_first``    X is (samples, features, timesteps)
====================  ===========================================================================

Method. Exact evidence first: overlapping rows share whole timesteps, found by hashing every step
to one float64 (a fixed random combination of its features) and comparing hashes at row
boundaries, never all pairs. Then statistical continuity: a junction between the end of one row
and the start of another is scored by small autoregressive predictors fitted *inside* the rows
(forward and backward residuals); the scores of each candidate successor map (j -> j+B, lanes;
j -> j+1, natural order) are compared by ranks with junctions inside rows (true continuations) and
between random rows (no relation). When neither map continues, a nearest-neighbour search over a
row subset looks for successors anywhere (shuffled lanes) against a null of cut points inside rows,
and a batch-coherence test asks whether the best-matching starts of one batch's row ends (with one
step per row: its rows' nearest neighbours) gather in one other batch, against the same rows with
their batch labels permuted -- an exact null for independent samples, whatever their distribution.
Rows shuffled one by one (``fit(shuffle=True)``) are also found by a global successor search: the
share of row ends whose best-matching start over the subset is *distinct* (continuation-like, and
the next-best start several times farther) against the same share for cuts inside rows among the
other rows' starts at that cut; a ratio of the nearest two distances does not grow where many
starts lie close (rows that all start and end at rest), so such rows give no distinct matches.
Rows permuted inside batches are found by comparing each row end's best junction with the next
batch's row starts against the same with a control batch at the same positions (batch k-1; the
row's own batch for one step per row), so rows that all start and end at one level (recordings at
rest) cannot look continued. When these have too little power to find a successor that is there
(single rows for ``independent``), the verdict is ``undetermined`` rather than ``independent``.

Exact and statistical. Shared bit-equal steps (beyond what chance repeats explain) and the
provenance record of arrays statebatch made (:func:`register_provenance`; a view of the same
memory, or a copy whose rows are rows of one, reordered or not) give ``exact=True``; everything
read from continuity is statistical (``exact=False``), which ``check_layout`` only ever warns about. Anchor rows are sampled (``max_rows``), so the cost
does not grow with the number of rows, and the verdict says when it sampled.

This module is pure numpy and imports only :mod:`statebatch.errors` and :mod:`statebatch._args`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .._args import check_int
from ..errors import DTypeError, ParameterError, ShapeError
# the layout kinds and the provenance record live with the results that register their arrays
from ..results.provenance import (CHANNELS_FIRST, INDEPENDENT, KINDS, LANES, MISTAKES, NATURAL,  # noqa: F401
                                  SHUFFLED, SLIDING, STRUCTURED, UNDETERMINED, Provenance, match_rows,
                                  provenance_of, register_provenance, row_keys)

__all__ = ["detect_layout", "LayoutVerdict", "KINDS", "MISTAKES", "Provenance", "register_provenance",
           "provenance_of"]


_MIN_EXACT_PAIRS = 5      # exact (hash) evidence is conclusive with few pairs
_MIN_STAT_PAIRS = 32      # rank statistics need more
_HASH_FEATURES = 32       # features used for the step hash
_FIT_STEPS = 32768        # steps per feature used to fit the junction predictors
_POWER_ROW = 7.0          # expected z (row test, threshold 4) below which a hidden successor may be missed
_POWER_BATCH = 8.0        # the same for the per-batch test (threshold 5)
_GLOBAL_ANCHORS = 2
_SHUFFLED_FIX = ("the rows were shuffled: keep lanes in order (row i of batch k+1 must continue row i of batch k) "
                 "-- rebuild X with statebatch.arrange_stateful(series, timesteps, batch_size) and pass "
                 "shuffle=False to model.fit.")
_COH_K = 3                # nearest starts per row end counted by the batch-coherence test
_COHERENCE_Z = 5.0        # batch coherence against permuted batch labels (exact null: exchangeable rows)


@dataclass
class LayoutVerdict:
    """What :func:`detect_layout` found.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    batch_size : int
        The batch size the rows were read with.
    stride : int or None
        Steps between the starts of consecutive samples (sliding windows; ``timesteps`` for
        natural-order chunks); ``stride_exact`` is False when it is estimated from continuity.
    evidence : str
        A sentence naming concrete rows.
    fix : str or None
        What to do (None when nothing needs fixing).
    order : ndarray ``(m,)`` of int, or None
        For natural-order chunks (and sliding windows whose stride divides T): indices such that
        ``X[order]`` is laid out in lanes (apply the same to y and sample weights).
    sampled, rows_checked, n_rows : bool, int, int
        Whether anchor rows were sampled, how many were compared, and the rows of X.
    confidence : float
        0..1, a rough strength of the evidence.
    scores : dict
        The statistics behind the verdict (AUCs, continuation fractions, overlap rates, power).
    transposed : LayoutVerdict or None
        For ``channels_first``: the verdict on ``X.transpose(0, 2, 1)``.
    exact : bool
        Whether the verdict rests on exact evidence: rows that share bit-equal steps, or
        statebatch's own record of how it made X (:func:`provenance_of`). A statistical verdict
        (``exact=False``) is never a hard error in ``check_layout``, only a warning.
    """

    kind: str
    batch_size: int
    stride: int | None = None
    stride_exact: bool = False
    evidence: str = ""
    fix: str | None = None
    order: np.ndarray | None = None
    sampled: bool = False
    rows_checked: int = 0
    n_rows: int = 0
    confidence: float = 0.0
    scores: dict[str, Any] = field(default_factory=dict)
    transposed: "LayoutVerdict | None" = None
    #: True when the verdict rests on exact evidence (rows sharing bit-equal steps, or statebatch's own
    #: record of how it made X); False for a statistical verdict, which is only ever a warning.
    exact: bool = False

    @property
    def is_mistake(self) -> bool:
        return self.kind in MISTAKES

    @property
    def severity(self) -> str:
        """'ok' (lanes), 'info' (independent / undetermined), 'error' (a layout mistake)."""
        return "error" if self.is_mistake else ("ok" if self.kind == LANES else "info")

    def __str__(self) -> str:
        head = f"layout: {self.kind}"
        if self.stride is not None:
            head += f" (stride {'' if self.stride_exact else '~'}{self.stride})"
        head += (", exact evidence" if self.exact else f", statistical, confidence {self.confidence:.2f}")
        head += (f"; {self.rows_checked} of {self.n_rows} rows sampled" if self.sampled
                 else f"; {self.rows_checked} rows checked")
        lines = [head, "  " + self.evidence]
        if self.fix:
            lines.append("  fix: " + self.fix)
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# small statistics helpers


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


# ----------------------------------------------------------------------------------------------
# step hashing (exact matches of whole timesteps)


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


# ----------------------------------------------------------------------------------------------
# autoregressive junction model


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


def _rms_scale(x: np.ndarray) -> np.ndarray:
    sd = x.reshape(-1, x.shape[-1]).std(axis=0)
    return np.where(sd > 0, sd, 1.0)


def _provenance_verdict(X: np.ndarray, b: int, prov: Provenance, rows: np.ndarray | None) -> LayoutVerdict | None:
    """The exact verdict for an array statebatch made (or whose rows are rows of one)."""
    n = X.shape[0]
    made = f"X was made by statebatch.{prov.maker}"
    V = dict(batch_size=b, n_rows=n, rows_checked=n, confidence=1.0, exact=True,
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
            return LayoutVerdict(LANES, evidence=(
                f"{made} (lanes for batch size {pb}); the rows are those rows in lane order."), **V)
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
        return LayoutVerdict(SHUFFLED, evidence=f"{made} (lanes for batch size {pb}), but {what}.",
                             fix=f"use the arrays statebatch made in their order, with batch_size={pb} and "
                                 "shuffle=False (Arranged.fit_kwargs() gives both).", **V)
    if prov.kind == LANES:
        pb = prov.batch_size
        if pb == b:
            rs = f", {prov.resets} lane reset(s) where a new series starts" if prov.resets else ""
            # a plain model.fit on these arrays neither resets those lanes nor weighs out their padding
            fix = ("feed them with statebatch.keras.fit_stateful(model, arranged) (or LaneResetCallback(arranged) "
                   "and the arrangement's sample weights), so that the lanes are reset where a new series starts "
                   "and padded steps weigh nothing.") if prov.resets else ""
            return LayoutVerdict(LANES, evidence=(
                f"{made}: lanes for batch size {pb}, {prov.timesteps} step(s) per row{rs}; row i of batch k+1 "
                "continues row i of batch k by construction."), fix=fix, **V)
        return LayoutVerdict(SHUFFLED, evidence=(
            f"{made} as lanes for batch size {pb}, but is read with batch size {b}: row i of batch k+1 then "
            f"holds another lane's chunk, not the continuation of row i."),
            fix=f"pass batch_size={pb} (or arrange again with batch_size={b}).", **V)
    if prov.kind == INDEPENDENT:
        return LayoutVerdict(INDEPENDENT, evidence=(
            f"{made}: one sequence per row, so no row continues another; fine for a stateless model, a "
            "stateful one would carry state between unrelated sequences."),
            fix="use stateful=False (or reset states after every batch).", **V)
    st, t = prov.stride, prov.timesteps
    if st is not None and st == t and b == 1:
        return LayoutVerdict(LANES, stride=t, stride_exact=True, evidence=(
            f"{made} with stride = timesteps = {t}: consecutive chunks, which with batch size 1 is the lane "
            "order" + (" (with a reset needed where each new series starts)" if prov.n_series > 1 else "") + "."), **V)
    if st is not None and st == t:
        order = _lane_order(np.arange(n), b) if n % b == 0 else None
        return LayoutVerdict(NATURAL, stride=t, stride_exact=True, evidence=(
            f"{made} with stride = timesteps = {t}: consecutive chunks in natural order, so a stateful model "
            f"with batch size {b} carries the state of sample j into sample j+{b}, {b * t} steps later."),
            fix=_natural_fix(n, b, order), order=order, **V)
    gap = "overlapping" if st is not None and st < t else "with gaps between them"
    return LayoutVerdict(SLIDING, stride=st, stride_exact=True, evidence=(
        f"{made}: sliding windows of {t} step(s) with stride {st}, {gap}; not lanes."),
        fix=("use statebatch.arrange_stateful(series, timesteps, batch_size) to cut the series into "
             "non-overlapping lanes, or use stateful=False with sliding windows."), **V)


# ----------------------------------------------------------------------------------------------
# public API


def detect_layout(X: Any, batch_size: int, *, timesteps: int | None = None,
                  features: int | None = None, max_rows: int = 2048, seed: int = 0) -> LayoutVerdict:
    """Detect the row layout of stateful RNN input from the data alone.

    Parameters
    ----------
    X : array ``(samples, timesteps, features)`` (or ``(samples, timesteps)``: one feature)
        Any numeric array, memmap or read-only view; only the sampled rows are read.
    batch_size : int
        The batch size the stateful model will use (``B``): row ``i`` of batch ``k`` is sample
        ``k * B + i``.
    timesteps, features : int, optional
        The model's window length and feature count. When X's axes disagree with them and agree
        when swapped, the verdict is ``channels_first`` (certain); without them a transposed X is
        recognised only from strong evidence (continuity along axis 2 and not along axis 1).
    max_rows : int
        Anchor rows compared with their candidate successors (all rows when there are fewer); the
        search for shuffled successors uses a subset of up to ``4 * max_rows`` rows. Bounds the
        cost whatever the number of rows.
    seed : int
        Seed of the row sample: the verdict is a pure function of ``(X, arguments)``.

    Returns
    -------
    LayoutVerdict
        ``kind`` (one of :data:`KINDS`), ``evidence``, ``fix``, ``order``, ``sampled`` ...

    Raises
    ------
    ShapeError, DTypeError, ParameterError
        X is not a 2-D/3-D numeric array, ``timesteps``/``features`` match X's axes neither as they
        are nor swapped, or an argument is out of range.

    Notes
    -----
    Arrays that statebatch made (``arrange_stateful``, ``make_windows``, ``bucket_batches``
    results), and copies whose rows are whole rows of one (reordered, say), are recognised
    (:func:`provenance_of`): their verdict is exact (``exact=True``), with the plan's batch size
    and resets. Otherwise only hash-equal overlapping steps are exact; every other verdict is a
    statistical reading (``exact=False``).

    Examples
    --------
    >>> import numpy as np
    >>> series = np.cumsum(np.random.default_rng(0).normal(size=(4096, 2)), axis=0)
    >>> X = series.reshape(512, 8, 2)           # consecutive chunks in natural order
    >>> detect_layout(X, batch_size=4).kind
    'natural_order_chunks'
    >>> detect_layout(X[detect_layout(X, batch_size=4).order], batch_size=4).kind
    'lanes'
    """
    b = check_int("batch_size", batch_size, 1)
    max_rows = check_int("max_rows", max_rows, 64)
    seed = check_int("seed", seed, 0)
    if timesteps is not None:
        timesteps = check_int("timesteps", timesteps, 1)
    if features is not None:
        features = check_int("features", features, 1)
    raw = X
    X = _as_array(X)
    n, t, f = X.shape
    as_is = timesteps in (None, t) and features in (None, f)
    swapped = timesteps in (None, f) and features in (None, t)
    if not (as_is or swapped):
        given = ", ".join(f"{k}={v}" for k, v in (("timesteps", timesteps), ("features", features)) if v is not None)
        raise ShapeError(f"X has shape {X.shape} ({t} timestep(s) x {f} feature(s)), which does not match {given}, "
                         "read either way round.",
                         "pass the timesteps and features of the X you check (or leave them out), or window the "
                         "series to that length first (statebatch.make_windows(series, timesteps)).")
    found = provenance_of(raw) if isinstance(raw, np.ndarray) and raw.ndim == 3 else None
    if found is not None and as_is:
        v = _provenance_verdict(X, b, *found)
        if v is not None:
            return v

    try:
        return _detect_oriented(X, b, timesteps, features, max_rows, seed)
    except (np.linalg.LinAlgError, FloatingPointError, OverflowError) as exc:
        # degenerate values (huge magnitudes, exact collinearity): no statistics to read
        return LayoutVerdict(UNDETERMINED, batch_size=b, n_rows=n, evidence=(
            f"the values defeat the continuity statistics ({type(exc).__name__}); no exact overlaps "
            "were found between rows."))


def _as_array(X: Any) -> np.ndarray:
    """X as a 3-D real ndarray without copying (memmaps and read-only views stay as they are)."""
    if not isinstance(X, np.ndarray):
        if hasattr(X, "to_numpy"):
            X = X.to_numpy()
        elif hasattr(X, "detach"):                     # torch tensors
            X = X.detach().cpu().numpy()
        try:
            X = np.asarray(X)
        except (ValueError, TypeError):
            raise DTypeError("X cannot form one numeric array (ragged rows or mixed objects).",
                             "pass an array of shape (samples, timesteps, features).") from None
    if X.dtype.kind not in "biuf":
        raise DTypeError(f"X has dtype {X.dtype}; layout detection needs real numbers.",
                         "convert X to floats first, e.g. X.astype('float32').")
    if X.ndim == 2:
        X = X[:, :, None]
    if X.ndim != 3:
        raise ShapeError(f"X has shape {X.shape}; layout detection needs (samples, timesteps, features).",
                         "pass the 3-D array you will give the model.")
    if X.shape[1] == 0 or X.shape[2] == 0:
        raise ShapeError(f"X has shape {X.shape}: no timesteps or no features.",
                         "pass samples with at least one timestep and one feature.")
    return X


def _detect_oriented(X: np.ndarray, b: int, timesteps: int | None, features: int | None,
                     max_rows: int, seed: int) -> LayoutVerdict:
    """The verdict on X as given, or ``channels_first`` when X reads better transposed."""
    n, t, f = X.shape
    hint = None
    if t != f:
        if timesteps is not None and t != timesteps and f == timesteps:
            hint = f"timesteps={timesteps} but X.shape[1] is {t} and X.shape[2] is {f}"
        elif features is not None and f != features and t == features:
            hint = f"features={features} but X.shape[2] is {f} and X.shape[1] is {t}"
    confirmed = (timesteps is not None and t == timesteps) or (features is not None and f == features)

    if hint:
        inner = _detect(X.transpose(0, 2, 1), b, max_rows, seed, global_pass=True)
        return _channels_first(X, b, inner, f"X looks channels-first: {hint}.", 1.0)

    v = _detect(X, b, max_rows, seed, global_pass=True)
    # a short 'time' axis that shows only weak structure may be the feature axis of transposed data
    weak = v.kind in STRUCTURED and v.confidence < 0.6 and t < f
    # one timestep of many features: if the features, read as time, continue from row to row at
    # the row boundaries, they are a transposed time axis (a chance match at every boundary is
    # not plausible for unrelated features)
    single = t == 1 and f >= 3
    if (v.kind in (UNDETERMINED, INDEPENDENT) or weak or single) and not confirmed and f >= 2 and t != f:
        vt = _detect(X.transpose(0, 2, 1), b, max_rows, seed, global_pass=False)
        sig, sig_t = v.scores.get("signal"), vt.scores.get("signal")
        if (vt.kind in STRUCTURED and vt.kind != SHUFFLED and vt.confidence >= 0.7
                and (single or vt.confidence >= v.confidence + 0.2)):
            return _channels_first(
                X, b, vt,
                "along axis 1 the rows show " + {UNDETERMINED: "no continuity", INDEPENDENT: "no continuation"}.get(
                    v.kind, f"only weak structure ({v.kind}, confidence {v.confidence:.2f})")
                + f", but along axis 2 they do strongly (read as (samples, {f}, {t}): {vt.evidence})", 0.8)
        if (f >= 16 and f >= 3 * t and sig_t is not None and sig_t >= 0.85
                and (sig is None or sig <= 0.65)):
            return _channels_first(
                X, b, vt,
                f"the 'time' axis is short ({t}) and the 'feature' axis long ({f}), and values are "
                f"smooth along axis 2 (continuity score {sig_t:.2f}) but not along axis 1"
                + (f" ({sig:.2f})" if sig is not None else "") + ": X is likely transposed", 0.6)
    return v


def _channels_first(X: np.ndarray, b: int, inner: LayoutVerdict, why: str, conf: float) -> LayoutVerdict:
    n, t, f = X.shape
    fix = (f"transpose it: X = X.transpose(0, 2, 1) (shape ({n}, {f}, {t})); read that way the rows "
           f"look like '{inner.kind}'")
    if inner.fix:
        fix += f", and then: {inner.fix}"
    return LayoutVerdict(kind=CHANNELS_FIRST, batch_size=b, evidence=why, fix=fix + ".",
                         sampled=inner.sampled, rows_checked=inner.rows_checked, n_rows=n,
                         confidence=conf, scores={"transposed": inner.scores}, transposed=inner)


# ----------------------------------------------------------------------------------------------
# the detector proper


def _rc(j: int, b: int) -> str:
    return f"row {j % b} of batch {j // b}"


def _lane_order(idx: np.ndarray, b: int) -> np.ndarray | None:
    m = idx.size // b
    if m == 0:
        return None
    return idx[: b * m].reshape(b, m).T.ravel()


def _detect(X: np.ndarray, b: int, max_rows: int, seed: int, global_pass: bool) -> LayoutVerdict:
    n, t, f = X.shape
    rng = np.random.default_rng(seed)
    V = dict(batch_size=b, n_rows=n)

    pool = n - b                         # anchors j with j+B (and j+1) inside X
    if pool < _MIN_EXACT_PAIRS:
        return LayoutVerdict(UNDETERMINED, evidence=f"too few rows ({n}) for batch size {b}: need "
                             f"at least {b + _MIN_EXACT_PAIRS} to compare consecutive batches.", **V)
    s_n = min(pool, max_rows)
    sampled = s_n < pool
    j = np.sort(rng.choice(pool, s_n, replace=False)) if sampled else np.arange(pool)
    r = rng.integers(0, n, s_n)
    clash = (r == j) | (r == j + 1) | (r == j + b)
    r[clash] = (r[clash] + n // 2 + 1) % n

    A = X[j]
    N = X[j + 1]
    L = X[j + b] if b > 1 else N
    R = X[r]
    A, N, L, R = (np.asarray(a, dtype=np.float64) for a in (A, N, L, R))
    V.update(sampled=sampled, rows_checked=int(s_n))

    # hashes of every step
    hf = rng.permutation(f)[:_HASH_FEATURES]
    w = rng.uniform(1.0, 2.0, hf.size) * np.exp(rng.uniform(-0.5, 0.5, hf.size))
    HA, HN, HL, HR = (_hash_steps(a, w, hf) for a in (A, N, L, R))
    finite = lambda H: np.isfinite(H).all(axis=1)                          # noqa: E731
    const = lambda H: np.all(H == H[:, :1], axis=1)                        # noqa: E731
    okA = finite(HA) & ~const(HA) if t > 1 else finite(HA)
    n_const = int(np.sum(const(HA))) if t > 1 else 0

    # ---- 1. exact overlaps along j -> j+1 and j -> j+B ----------------------------------------
    exact = _exact_maps(HA, HN, HL, HR, okA, finite, const, b, t)
    V["scores"] = dict(exact)
    if exact.get("verdict"):
        return _exact_verdict(exact, j, b, n, t, V)

    okA = okA & finite(HN) & finite(HL) & finite(HR)
    if okA.sum() < _MIN_STAT_PAIRS:
        why = (f"only {int(okA.sum())} usable rows" + (f" ({n_const} constant)" if n_const else "")
               + " for a continuity test; no exact overlaps between rows.")
        return LayoutVerdict(UNDETERMINED, evidence=why, **V)
    jj = j[okA]
    A, N, L, R = A[okA], N[okA], L[okA], R[okA]
    keepf = A.reshape(-1, f).std(axis=0) > 0
    if not keepf.any():
        return LayoutVerdict(UNDETERMINED, evidence="all features are constant.", **V)
    A, N, L, R = A[..., keepf], N[..., keepf], L[..., keepf], R[..., keepf]

    if t == 1:
        v = _detect_t1(A, N, L, R, jj, b, n, V)
        if v.kind in (UNDETERMINED, LANES) and b > 1 and global_pass:
            pv = _permuted_verdict(_next_batch(X, b, n, keepf, None, rng, max_rows), b, V)
            if pv is not None:
                return pv
            if v.kind == UNDETERMINED:
                return _global_t1(X, b, n, keepf, rng, V, max_rows, v.scores)
        return v
    return _detect_stat(X, A, N, L, R, jj, b, n, t, keepf, rng, w, hf, V, max_rows, global_pass)


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


def _exact_verdict(exact: dict, j: np.ndarray, b: int, n: int, t: int, V: dict) -> LayoutVerdict:
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
    exact = exact.get("verdict_neglog_p", 0.0) >= 30.0
    return LayoutVerdict(SLIDING, stride=s, stride_exact=True, evidence=ev, fix=fix + ".", order=order,
                         confidence=float(min(1.0, rate)), exact=exact, **V)


# ---------------------------------------------------------------------------------------- T == 1


def _detect_t1(A: np.ndarray, N: np.ndarray, L: np.ndarray, R: np.ndarray, jj: np.ndarray, b: int, n: int,
               V: dict) -> LayoutVerdict:
    """One step per row: lanes and natural order told apart by which neighbour is closer."""
    sd = _rms_scale(A)
    dist = lambda P, Q: np.sum(((Q[:, 0] - P[:, 0]) / sd) ** 2, axis=-1)   # noqa: E731
    dN, dL, dR = dist(A, N), dist(A, L), dist(A, R)
    m = dN.size
    cN = _auc(dN, dR)
    cL = _auc(dL, dR) if b > 1 else cN
    seN, seL = _auc_se(cN, m, m), _auc_se(cL, m, m)
    q, qse = _paired_less(dL, dN) if b > 1 else (0.5, 0.0)
    V["scores"].update(related_natural=cN, related_lanes=cL, lanes_vs_natural=q)
    relN = cN - 0.5 >= max(0.15, 4 * seN)
    relL = cL - 0.5 >= max(0.15, 4 * seL)
    note = " (one step per row: lanes and natural order are told apart by which neighbour is closer)"
    if b == 1:
        if relN:
            return LayoutVerdict(LANES, evidence=f"sample j+1 is close to sample j ({cN:.0%} of sampled "
                                 f"pairs closer than random pairs); with batch size 1 that is the lane order.",
                                 confidence=_conf(cN), **V)
        return LayoutVerdict(UNDETERMINED, evidence=(
            f"one step per row, and sample j+1 is no closer to sample j than random rows ({cN:.2f}; 0.5 = "
            "like random rows). With batch size 1 there is no batch structure to pool over and nothing "
            "inside a row shows what a step looks like: the steps of a series in shuffled order and "
            "independent samples are both rows in random order, and the shape of the point cloud alone "
            "cannot show a hidden successor (independent draws of features that depend on one latent "
            "value lie on a curve too), so noise, shuffled lanes and independent samples cannot be told "
            "apart here, and this is not evidence that the rows are independent."),
            fix=("if these rows are steps of one series, keep them in time order; if they are unrelated "
                 "samples, use stateful=False."), **V)
    if (relL or relN) and abs(q - 0.5) >= max(0.08, 4 * qse):
        if q > 0.5:
            return LayoutVerdict(LANES, evidence=f"row i of batch k+1 is closer to row i of batch k than "
                                 f"sample j+1 is to sample j in {q:.0%} of {m} sampled rows{note}.",
                                 confidence=_conf(cL), **V)
        order = _lane_order(np.arange(n), b) if n % b == 0 else None
        return LayoutVerdict(NATURAL, stride=1, evidence=f"sample j+1 is closer to sample j than row i of "
                             f"the next batch is in {1 - q:.0%} of {m} sampled rows{note}; with one step "
                             "per row this is also what windows of any stride look like.",
                             fix=_natural_fix(n, b, order), order=order, confidence=_conf(cN), **V)
    return LayoutVerdict(UNDETERMINED, evidence=f"one step per row; consecutive rows (j->j+1: {cN:.2f}, "
                         f"j->j+{b}: {cL:.2f}, 0.5 = like random rows) give no clear order.", **V)


def _conf(c: float) -> float:
    return float(np.clip((c - 0.5) * 2.5, 0.0, 1.0))


def _natural_fix(n: int, b: int, order: np.ndarray | None) -> str:
    m = n // b
    s = ("reorder the samples into lanes: X = X[order] (the same for y and sample weights), with "
         f"order = np.arange({b * m}).reshape({b}, {m}).T.ravel() so that lane i takes chunks "
         f"i*{m} .. i*{m}+{m - 1}; or use statebatch.arrange_stateful(series, timesteps, batch_size)")
    if order is None:
        s += f" (first drop or pad the last {n % b} sample(s): {n} is not a multiple of {b})"
    return s + "."


# ------------------------------------------------------------------------------------ T >= 2 path


def _detect_stat(X: np.ndarray, A: np.ndarray, N: np.ndarray, L: np.ndarray, R: np.ndarray, jj: np.ndarray,
                 b: int, n: int, t: int, keepf: np.ndarray, rng: np.random.Generator, w: np.ndarray,
                 hf: np.ndarray, V: dict, max_rows: int, global_pass: bool) -> LayoutVerdict:
    """T >= 2 without exact overlaps: continuity of the junctions of each successor map.

    A, N, L, R : ``(S, T, F)`` anchor rows, their next samples, the rows below them in the next
    batch, and random rows.
    """
    p = min(2, t // 2)
    jm = _Junction(A, p)
    S = A.shape[0]
    # reference: cuts inside rows (true continuations), up to 4 per row
    cuts = np.arange(p, t - p + 1)
    if cuts.size > 4:
        cuts = np.unique(np.linspace(p, t - p, 4).round().astype(int))
    Wd = np.concatenate([jm.score(A[:, c - p: c], A[:, c: c + p]) for c in cuts])
    dN = jm.score(A[:, -p:], N[:, :p])
    dL = jm.score(A[:, -p:], L[:, :p]) if b > 1 else dN
    dR = jm.score(A[:, -p:], R[:, :p])
    sig = _auc(Wd, dR)
    sc = V["scores"]
    sc.update(signal=sig, p=p)
    q90 = float(np.quantile(Wd, 0.9))
    q20w = float(np.quantile(Wd, 0.2))
    fR = float(np.mean(dR <= q90))

    def stats(d):
        c = _auc(d, dR)
        cont = (float(np.mean(d <= q90)) - fR) / max(0.9 - fR, 1e-9)
        qr = float(np.quantile(d, 0.2)) / max(q20w, 1e-300)
        return c, _auc_se(c, d.size, dR.size), cont, qr

    cN, seN, contN, qrN = stats(dN)
    cL, seL, contL, qrL = stats(dL)
    sc.update(related_natural=cN, related_lanes=cL, continues_natural=contN, continues_lanes=contL,
              low_quantile_ratio_natural=qrN, low_quantile_ratio_lanes=qrL)
    sig_se = _auc_se(sig, Wd.size, dR.size)
    if sig - 0.5 < max(0.2, 4 * sig_se):
        return LayoutVerdict(UNDETERMINED, evidence=(
            f"no continuity signal: a step inside a row is no more alike its neighbour than steps of "
            f"random rows (score {sig:.2f}; 0.5 = white noise), so row order cannot be read from "
            f"the values, and no rows share exact steps."), **V)

    relN = cN - 0.5 >= max(0.1, 4 * seN)
    relL = cL - 0.5 >= max(0.1, 4 * seL)
    isN = relN and contN >= 0.5 and qrN <= 2.5
    isL = relL and contL >= 0.5 and qrL <= 2.5
    m = dN.size

    def ex(d):  # an example anchor with a typical continuation junction
        k = int(np.argmin(np.abs(d - np.median(Wd))))
        return int(jj[k])

    if b > 1 and isL and isN:
        q, _ = _paired_less(dL, dN)
        isL, isN = q >= 0.5, q < 0.5
    if (isL or relL) and not isN and not relN and b > 1 and global_pass:
        # row i -> row i of the next batch relates; is that only because some batches kept their order
        # (rows permuted inside batches: with small B many permutations leave rows in place)?
        pv = _permuted_verdict(_next_batch(X, b, n, keepf, jm, rng, max_rows), b, V)
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
        return LayoutVerdict(LANES, evidence=ev + ".", confidence=_conf(cL) * min(1.0, contL + 0.2), **V)
    if isN:
        a = ex(dN)
        order = _lane_order(np.arange(n), b) if n % b == 0 else None
        ev = (f"sample {a + 1} starts right after sample {a} ends (the jump is like an ordinary step) in "
              f"~{min(contN, 1):.0%} of {m} sampled pairs, but row i of batch k+1 (sample j+{b}) continues "
              f"row i of batch k in only ~{max(contL, 0):.0%}: consecutive chunks in natural order, so "
              f"the state of sample j flows into sample j+{b}, {b * t} steps later")
        return LayoutVerdict(NATURAL, stride=t, stride_exact=True, evidence=ev + ".",
                             fix=_natural_fix(n, b, order), order=order,
                             confidence=_conf(cN) * min(1.0, contN + 0.2), **V)
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
        return LayoutVerdict(SLIDING, stride=stride, stride_exact=False, evidence=ev + ".", fix=fix + ".",
                             confidence=_conf(cN), **V)
    if relL:
        a = ex(dL)
        ev = (f"row i of batch k+1 is related to row i of batch k ({cL:.0%} of {m} sampled pairs closer "
              f"than random rows, e.g. {_rc(a, b)} -> {_rc(a + b, b)}), though only ~{max(contL, 0):.0%} "
              f"look like a plain continuation (many resets, or gaps between the chunks of a lane)")
        return LayoutVerdict(LANES, evidence=ev + ".", confidence=0.5 * _conf(cL), **V)

    # ---- neither map continues: look for successors anywhere ------------------------------------
    if not global_pass:
        return LayoutVerdict(INDEPENDENT, evidence=(
            f"no row continues row i of the next batch ({cL:.2f}) or the next sample ({cN:.2f}; 0.5 = "
            f"like random rows) although values are continuous inside rows ({sig:.2f})."),
            confidence=_conf(sig), **V)
    pv = _permuted_verdict(_next_batch(X, b, n, keepf, jm, rng, max_rows), b, V)
    if pv is not None:
        return pv
    return _global(X, jm, Wd, q90, b, n, t, keepf, rng, w, hf, V, max_rows, cN, cL, sig)


# ------------------------------------------------------------------- rows permuted inside batches

_NEXT_BATCH_Z = 4.0       # batch-level z of the next-batch test (threshold)
_NEXT_BATCH_U = 0.56      # and the share of rows whose best match lies in the next batch (0.5: none)


def _next_batch(X: np.ndarray, b: int, n: int, keepf: np.ndarray, jm: "_Junction | None",
                rng: np.random.Generator, max_rows: int) -> dict | None:
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
    nb = n // b
    if b < 2 or nb < 4:
        return None
    t = X.shape[1]
    ks = np.arange(1, nb - 1)
    m = min(ks.size, max(8, max_rows // b))
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


def _permuted_verdict(nbt: dict, b: int, V: dict) -> LayoutVerdict | None:
    """``shuffled_lanes`` when row ends continue into the next batch, but not into their own row."""
    if nbt is None:
        return None
    V["scores"].update(next_batch_u=nbt["u"], next_batch_z=nbt["z"], next_batch_same_row=nbt["same_row"])
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
    return LayoutVerdict(SHUFFLED, evidence=ev + ".", fix=_SHUFFLED_FIX,
                         confidence=float(np.clip(2 * (nbt["u"] - 0.5), 0, 1)), **V)


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared distances between the rows of ``a (..., k, D)`` and ``b (..., l, D)``: ``(..., k, l)``
    (a matrix product, not a ``(k, l, D)`` difference array)."""
    d = (np.sum(a * a, -1)[..., :, None] + np.sum(b * b, -1)[..., None, :]
         - 2.0 * np.matmul(a, np.swapaxes(b, -1, -2)))
    return np.maximum(d, 0.0)


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


def _global(X: np.ndarray, jm: _Junction, Wd: np.ndarray, q90: float, b: int, n: int, t: int,
            keepf: np.ndarray, rng: np.random.Generator, w: np.ndarray, hf: np.ndarray, V: dict,
            max_rows: int, cN: float, cL: float, sig: float) -> LayoutVerdict:
    """Successors anywhere: exact overlaps (shuffled sliding windows) and nearest-neighbour
    junctions (shuffled lanes) within a random subset of rows."""
    sc = V["scores"]
    sub = _row_subset(n, b, min(n, 4 * max_rows), rng)
    m_sub = sub.size
    p = jm.p
    t0 = t // 2
    # full rows are needed for the step hashes; gather in chunks to bound memory
    H = np.empty((m_sub, t))
    steps_needed = np.unique(np.r_[np.arange(p), np.arange(t - p, t), np.arange(t0 - p, t0 + p)])
    G = np.empty((m_sub, steps_needed.size, int(keepf.sum())))
    chunk = max(1, 4_000_000 // max(1, t * X.shape[2]))
    for s0 in range(0, m_sub, chunk):
        rows = np.asarray(X[sub[s0: s0 + chunk]])
        H[s0: s0 + chunk] = _hash_steps(rows, w, hf)
        G[s0: s0 + chunk] = rows[:, steps_needed][..., keepf]
    pos = {int(s): k for k, s in enumerate(steps_needed)}
    first = G[:, [pos[s] for s in range(p)]]
    last = G[:, [pos[s] for s in range(t - p, t)]]
    midL = G[:, [pos[s] for s in range(t0 - p, t0)]]
    midR = G[:, [pos[s] for s in range(t0, t0 + p)]]
    okr = np.isfinite(H).all(axis=1) & ~np.all(H == H[:, :1], axis=1)
    frac_in = (m_sub - 1) / max(n - 1, 1)

    # exact overlaps of >= 2 steps with any row of the subset (shuffled sliding windows)
    if t >= 3:
        order = np.argsort(H[:, 0], kind="stable")
        ss = H[order, 0]
        best = _subset_overlaps(H, okr, H, ss, order, exclude_self=True)
        rate = float(np.mean(best[okr] > 0)) if okr.any() else 0.0
        # chance: fake rows made of steps of random rows overlap real rows only when the data
        # repeats whole patterns (quantised / constant stretches)
        nf = min(m_sub, 2048)
        fake = H[rng.integers(0, m_sub, (nf, t)), np.arange(t)[None, :]]
        fb = _subset_overlaps(fake, np.isfinite(fake).all(axis=1), H, ss, order, exclude_self=False)
        fake_rate = float(np.mean(fb > 0))
        sc.update(global_overlap_rate=rate, global_overlap_chance=fake_rate)
        hits = best[best > 0]
        if hits.size >= _MIN_EXACT_PAIRS and rate >= max(0.02, 10 * fake_rate) and (
                rate >= 0.5 or rate >= 0.25 * min(1.0, (t - 2) * frac_in)):
            vals, cnt = np.unique(hits, return_counts=True)
            common = vals[cnt >= max(2, 0.05 * hits.size)]
            stride = int(np.gcd.reduce(common)) if common.size else int(vals[np.argmax(cnt)])
            a = int(np.flatnonzero(best == (stride if stride in hits else hits[0]))[0])
            aa = int(sub[a])
            ev = (f"rows overlap but are not in order: e.g. a row starts {int(best[a])} step(s) into sample "
                  f"{aa} (exact copies of its steps); {hits.size} of {int(okr.sum())} checked rows have an "
                  f"overlapping row{' in a random subset' if m_sub < n else ''}: shuffled sliding windows "
                  f"(stride ~{stride})")
            return LayoutVerdict(SLIDING, stride=stride, stride_exact=False, evidence=ev + ".",
                                 fix=("use statebatch.arrange_stateful(series, timesteps, batch_size) for "
                                      "non-overlapping lanes in order, or stateful=False with shuffled "
                                      "sliding windows."), confidence=0.9,
                                 exact=fake_rate == 0.0 and sc.get("repeat_rate", 0.0) < 0.01, **V)

    # nearest start to each row end, against nearest start to an interior cut
    Ssig = jm.start_sig(first)
    Esig = jm.end_sig(last)
    # null: a cut inside row j against the same cut inside other rows -- same marginals, and under
    # any chunked arrangement the nearest chained neighbours are >= T steps away (vs 1 for ends)
    Msig = jm.end_sig(midL)
    Ssig_mid = jm.start_sig(midR)
    dim = Ssig.shape[1]
    if dim > 32:
        P = rng.standard_normal((dim, 32)) / math.sqrt(32)
        Ssig, Esig, Msig, Ssig_mid = Ssig @ P, Esig @ P, Msig @ P, Ssig_mid @ P
    okS = okr & np.isfinite(Ssig).all(axis=1)
    anchors = np.flatnonzero(okr & np.isfinite(Esig).all(axis=1) & np.isfinite(Msig).all(axis=1))
    if anchors.size > _GLOBAL_ANCHORS * max_rows:  # the search is anchors x subset: bound both
        anchors = np.sort(rng.choice(anchors, _GLOBAL_ANCHORS * max_rows, replace=False))
    rad = float(np.quantile(Wd, 0.5))
    okM = okr & np.isfinite(Ssig_mid).all(axis=1)
    bid = sub // b
    gstart = np.flatnonzero(np.r_[True, bid[1:] != bid[:-1]])       # candidate groups = batches
    agg = b > 1 and gstart.size >= 4
    e_best, e_arg, e_cnt, e_col, e_agg, e_top = _nearest(
        Esig[anchors], Ssig, anchors, okS, rad, gstart if agg else None, rng if agg else None, _COH_K)
    m_best, _, m_cnt, m_col, m_agg, m_top = _nearest(Msig[anchors], Ssig_mid, anchors, okM, rad,
                                                     gstart if agg else None, None, 2)
    k = anchors.size
    ce, cm = float(e_cnt.mean()), float(m_cnt.mean())
    # a true successor lies within the median continuation score half of the time.
    # Variance of a two-sample U statistic: anchor sums and candidate sums both vary.
    est = (ce - cm) / max(0.5 * frac_in, 1e-9)
    var = np.var(e_cnt - m_cnt) / k + np.var(e_col - m_col) * m_sub / k ** 2
    z = (ce - cm) / math.sqrt(var + 0.25 / k ** 2)
    sc.update(shuffled_count_end=ce, shuffled_count_interior=cm, shuffled_z=z,
              shuffled_fraction=est, shuffled_subset=int(m_sub))
    zb = estb = 0.0
    if agg:
        # per batch: the candidate batch with the most row starts right after its rows' ends; with
        # shuffled lanes one batch holds the successors of a whole batch
        ab = bid[anchors]
        ast = np.flatnonzero(np.r_[True, ab[1:] != ab[:-1]])
        Ce = np.add.reduceat(e_agg, ast, axis=0)
        Cm = np.add.reduceat(m_agg, ast, axis=0)
        own = np.searchsorted(bid[gstart], ab[ast])
        # planted alternative for the power estimate: the own batch's interior starts, counting each
        # row's own continuation (a true successor at the cut), stand in for a successor batch
        dm_self = np.sum((Msig[anchors] - Ssig_mid[anchors]) ** 2, axis=1)
        self_within = (okM[anchors] & (dm_self <= rad)).astype(np.float64)
        planted = Cm[np.arange(ast.size), own] + np.add.reduceat(self_within, ast)
        Ce[np.arange(ast.size), own] = -np.inf
        Cm[np.arange(ast.size), own] = -np.inf
        diff = Ce.max(axis=1) - Cm.max(axis=1)
        nba = diff.size
        zb = float(diff.mean() / math.sqrt(diff.var() / nba + 0.25 / nba ** 2))
        rows_per = np.diff(np.r_[ast, ab.size])
        estb = float(diff.mean() / max(0.5 * np.mean(rows_per) * (gstart.size - 1) / max(n // b - 1, 1), 1e-9))
        sc.update(shuffled_batch_z=zb, shuffled_batch_fraction=estb)
    row_ok = z >= 4 and est >= 0.4 and (ce - cm) * k >= 8
    succ = _distinct_successors(Esig[anchors], Ssig, e_top, Msig[anchors], Ssig_mid, m_top, q90,
                                sub[anchors], sub, b)
    sc.update(successor_distinct_end=succ["end"], successor_distinct_interior=succ["interior"],
              successor_z=succ["z"], successor_at_lane=succ["at_lane"])
    succ_ok = (succ["z"] >= _SUCCESSOR_Z and succ["end"] - succ["interior"] >= _SUCCESSOR_EFFECT
               and succ["count"] >= 8 and succ["at_lane"] < 0.5)
    batch_ok = zb >= 5 and estb >= 0.1
    # Power: if every row had a hidden successor in the subset, the end counts would exceed the
    # interior counts by 0.5 * frac_in per row (the successor lies within the median continuation
    # score half of the time); per batch, the gain is measured by planting: each anchor batch's own
    # interior continuations stand in for a successor batch. When even that excess would stay
    # below the thresholds with margin, shuffled lanes and independent samples look the same here,
    # and saying "independent" would be a guess.
    sd_row = (ce - cm) / z if z else math.sqrt(var + 0.25 / k ** 2)
    power_row = 0.5 * frac_in / max(sd_row, 1e-12)
    power_batch = 0.0
    if agg:
        sd_b = math.sqrt(diff.var() / nba + 0.25 / nba ** 2)
        other = Cm.max(axis=1)
        gain = float(np.mean(np.maximum(planted, other) - other))
        power_batch = gain * (gstart.size - 1) / max(n // b - 1, 1) / max(sd_b, 1e-12)
    sc.update(shuffled_power_row=power_row, shuffled_power_batch=power_batch)
    coh_ok = False
    if b > 1 and gstart.size >= 4:
        # batch coherence: the nearest start to each row end, and to each interior cut, by batch
        coh = _batch_coherence(bid, np.repeat(anchors, _COH_K), e_top.ravel(), rng)
        sc.update(coherence_z=coh["z"], coherence_effect=coh["effect"], coherence_own_z=coh["z_own"])
        coh_ok = _coherent(coh)
    if row_ok or batch_ok or coh_ok or succ_ok:
        kk = int(np.argmin(np.abs(e_best - np.median(Wd)) + 1e9 * (e_best > q90)))
        a, rr = int(sub[anchors[kk]]), int(sub[e_arg[kk]])
        ev = (f"rows do continue other rows, just not row i of the next batch: e.g. sample {rr} ({_rc(rr, b)}) "
              f"picks up where sample {a} ({_rc(a, b)}) ends; "
              + (f"{succ['end']:.0%} of row ends have one distinct best-matching row start somewhere (a "
                 f"continuation-like junction, the next-best start at least {1 / _SUCCESSOR_RATIO:.0f}x "
                 f"farther), against {succ['interior']:.0%} of cuts inside rows among the other rows' "
                 f"starts at that cut (paired z={succ['z']:.1f})" if succ_ok else "")
              + ("; " if succ_ok and (row_ok or batch_ok or coh_ok) else "")
              + ((f"row ends have more row starts right after "
                  f"them than cuts inside rows do ({ce:.2f} vs {cm:.2f} per row, z={z:.1f}"
                  + (f"; per batch, z={zb:.1f}: a whole batch holds the successors of a batch" if batch_ok else "")
                  + (f"; the best-matching starts of one batch's row ends gather in one other batch, "
                     f"z={sc['coherence_z']:.1f} against the same rows with batch labels permuted" if coh_ok else "")
                  + ")") if (row_ok or batch_ok or coh_ok) else "")
              + f" among {k} checked rows"
              f"{' and a random subset of ' + str(m_sub) + ' rows' if m_sub < n else ''}, while row i -> "
              f"row i of the next batch looks unrelated ({cL:.2f}; 0.5 = random)")
        conf = max(est if row_ok else 0, estb if batch_ok else 0, 0.5 if coh_ok else 0,
                   succ["end"] - succ["interior"] if succ_ok else 0)
        return LayoutVerdict(SHUFFLED, evidence=ev + ".", fix=_SHUFFLED_FIX, confidence=float(np.clip(conf, 0, 1)),
                             **V)
    # 'independent' claims that no row continues any other: that needs power for single rows, since
    # rows shuffled one by one (fit(shuffle=True)) have no batch structure for the per-batch test to see
    if power_row < _POWER_ROW:
        ev = (f"no row continues row i of the next batch ({cL:.2f}) or the next sample ({cN:.2f}; 0.5 = like "
              f"random rows), although values are continuous inside rows ({sig:.2f}); rows might still "
              f"continue other rows in a shuffled order, but with {n} rows of {t} step(s) x "
              f"{int(keepf.sum())} feature(s) a row boundary carries too little information to find a hidden "
              f"successor among the others (expected z {power_row:.1f}"
              + (f", per batch {power_batch:.1f}" if agg else "") + f"; {_POWER_ROW:.0f} needed)"
              + (f", and the best-matching starts of a batch's row ends do not gather in one other batch "
                 f"(z={sc['coherence_z']:.1f} against permuted batch labels; 5 needed)" if "coherence_z" in sc else "")
              + ": shuffled lanes and independent samples cannot be told apart here, and this is not "
              "evidence that the rows are independent")
        return LayoutVerdict(UNDETERMINED, evidence=ev + ".", fix=(
            "if these rows are chunks of longer series, keep them in lane order (row i of batch k+1 "
            "continues row i of batch k; statebatch.arrange_stateful builds that); if they are "
            "unrelated samples, use stateful=False."), confidence=0.0, **V)
    ev = (f"no row looks like the continuation of another: row i -> row i of the next batch {cL:.2f}, "
          f"sample j -> j+1 {cN:.2f} (0.5 = like random rows), and row ends have no more row starts right "
          f"after them than cuts inside rows ({ce:.2f} vs {cm:.2f} per row, {k} rows, z={z:.1f}"
          + (f"; per batch z={zb:.1f}" if agg else "") + "), although values are "
          f"continuous inside rows ({sig:.2f}). Independent samples: fine for a stateless model; a "
          f"stateful one carries state between unrelated samples")
    return LayoutVerdict(INDEPENDENT, evidence=ev + ".", fix=(
        "if the samples are unrelated, use stateful=False (or reset states after every batch); for "
        "long series, arrange them in lanes with statebatch.arrange_stateful."),
        confidence=_conf(sig), **V)


_SUCCESSOR_RATIO = 0.25   # best match / second-best (squared distances) below which a match is distinct
_SUCCESSOR_Z = 5.0        # paired z of distinct matches at row ends against cuts inside rows (threshold)
_SUCCESSOR_EFFECT = 0.1   # and the excess share of row ends with a distinct match


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


def _coherent(coh: dict) -> bool:
    """Batch coherence conclusive: far beyond every permutation, and not explained by rows that
    resemble their own batch (grouped samples of one series, say), which shuffled lanes never do."""
    return coh["z"] >= _COHERENCE_Z and coh["beat_all"] and coh["z_own"] < 3


def _global_t1(X: np.ndarray, b: int, n: int, keepf: np.ndarray, rng: np.random.Generator, V: dict,
               max_rows: int, sc: dict) -> LayoutVerdict:
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
    sub = _row_subset(n, b, min(n, 2 * max_rows), rng)
    Q = np.asarray(X[sub], dtype=np.float64)[:, 0][:, keepf]
    ok = np.isfinite(Q).all(axis=1)
    Q = np.where(ok[:, None], Q, 0.0) / _rms_scale(Q[ok])
    anchors = np.flatnonzero(ok)
    bid = sub // b
    nb = np.unique(bid).size
    f = int(keepf.sum())
    cN, cL = sc.get("related_natural", 0.5), sc.get("related_lanes", 0.5)
    head = (f"one step per row, and neither sample j+1 ({cN:.2f}) nor row i of the next batch ({cL:.2f}; "
            f"0.5 = like random rows) is closer than random rows")
    if nb < 4 or anchors.size < _MIN_STAT_PAIRS:
        return LayoutVerdict(UNDETERMINED, evidence=head + f"; too few batches ({nb}) to look for shuffled "
                             "lanes.", **V)
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
        return LayoutVerdict(SHUFFLED, evidence=ev + ".", fix=_SHUFFLED_FIX,
                             confidence=float(np.clip(0.5 + coh["effect"], 0, 1)), **V)
    ev = (head + f"; the nearest neighbours of a batch's rows do not gather in one other batch either "
          f"(z={coh['z']:.1f} against permuted batch labels{where}; {_COHERENCE_Z:.0f} needed). With one "
          f"step of {f} feature(s) per row nothing inside a row shows what a step looks like, so a hidden "
          "successor cannot be told from a row with similar values: shuffled lanes and independent "
          "samples cannot be told apart here, and this is not evidence that the rows are independent")
    return LayoutVerdict(UNDETERMINED, evidence=ev + ".", fix=(
        "if these rows are steps of longer series, keep them in lane order (row i of batch k+1 "
        "continues row i of batch k; statebatch.arrange_stateful builds that); if they are unrelated "
        "samples, use stateful=False."), **V)


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


def _nearest_top(E: np.ndarray, S: np.ndarray, self_idx: np.ndarray, okS: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """Indices ``(len(E), _COH_K)`` of the nearest rows of S to each row of E (not its own row, only
    okS rows), ties broken at random (quantised data has many; a first-index rule would tie them
    to positions)."""
    return _nearest(E, S, self_idx, okS, -1.0, None, rng, _COH_K)[5]


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
            if agg is not None:
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
            if topk:
                top[a0: a0 + blk, i] = np.where(np.isfinite(m), k, top[a0: a0 + blk, 0])
            if not last:
                k = k_next
    return (best, arg, cnt, col, agg) if not topk else (best, arg, cnt, col, agg, top)
