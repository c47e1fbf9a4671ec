"""``detect_layout``: the orchestration of the layout detector's steps.

Provenance first (arrays statebatch made are recognised: exact); then, on a sample of anchor rows,
exact overlaps (:mod:`.exact`), continuity along lanes and natural order (:mod:`.statistical`),
rows permuted inside batches (:mod:`.permuted`) and successors anywhere (:mod:`.shuffled`); and
X read transposed when it looks channels-first. Each step reads one :class:`~.verdict.Context`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..._args import check_int
from ...errors import DTypeError, ParameterError, ShapeError  # noqa: F401  (ParameterError: raised by check_int)
from ...results.provenance import (CHANNELS_FIRST, INDEPENDENT, LANES, SHUFFLED, STRUCTURED, UNDETERMINED,
                                   provenance_of)
from .exact import _MIN_EXACT_PAIRS, _exact_maps, _exact_verdict, _hash_steps, _provenance_verdict
from .permuted import _MIN_STAT_PAIRS, _next_batch, _permuted_verdict
from .shuffled import _global, _global_t1
from .statistical import _detect_t1, _junction_stats, _map_verdict, _no_signal
from .verdict import Anchors, Context, LayoutVerdict, _conf

_HASH_FEATURES = 32       # features used for the step hash


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


def _detect(X: np.ndarray, b: int, max_rows: int, seed: int, global_pass: bool) -> LayoutVerdict:
    """The verdict on X as given: exact overlaps, then continuity along the two successor maps, then
    rows permuted inside batches and successors anywhere."""
    ctx = Context(X, b, np.random.default_rng(seed), max_rows, global_pass)
    n = ctx.n
    if n - b < _MIN_EXACT_PAIRS:             # anchors j with j+B (and j+1) inside X
        return ctx.verdict(UNDETERMINED, evidence=f"too few rows ({n}) for batch size {b}: need "
                           f"at least {b + _MIN_EXACT_PAIRS} to compare consecutive batches.")
    ctx, raw = _sample_anchors(ctx)
    found = _exact_step(ctx, raw)
    if isinstance(found, LayoutVerdict):
        return found
    ctx, anc = found
    if ctx.t == 1:
        return _detect_one_step(ctx, anc)
    return _detect_stat(ctx, anc)


def _sample_anchors(ctx: Context) -> tuple[Context, Anchors]:
    """Up to ``max_rows`` anchor rows ``j`` with their candidates ``j+1``, ``j+B`` and random rows
    (read as float64, all features), and the step hash's weights."""
    X, b, n, rng = ctx.X, ctx.batch_size, ctx.n, ctx.rng
    pool = n - b
    s_n = min(pool, ctx.max_rows)
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
    hf = rng.permutation(X.shape[2])[:_HASH_FEATURES]
    w = rng.uniform(1.0, 2.0, hf.size) * np.exp(rng.uniform(-0.5, 0.5, hf.size))
    ctx = replace(ctx, sampled=sampled, rows_checked=int(s_n), hash_weights=w, hash_features=hf)
    return ctx, Anchors(j, A, N, L, R)


def _exact_step(ctx: Context, raw: Anchors) -> LayoutVerdict | tuple[Context, Anchors]:
    """Exact overlaps along ``j -> j+1`` and ``j -> j+B`` (a verdict when conclusive); otherwise the
    anchors usable for statistics (finite, not constant) restricted to the features that vary, and
    the context that knows them."""
    t, f, b = ctx.t, ctx.X.shape[2], ctx.batch_size
    A, N, L, R = raw.A, raw.N, raw.L, raw.R
    HA, HN, HL, HR = (_hash_steps(a, ctx.hash_weights, ctx.hash_features) for a in (A, N, L, R))
    finite = lambda H: np.isfinite(H).all(axis=1)                          # noqa: E731
    const = lambda H: np.all(H == H[:, :1], axis=1)                        # noqa: E731
    okA = finite(HA) & ~const(HA) if t > 1 else finite(HA)
    n_const = int(np.sum(const(HA))) if t > 1 else 0
    exact = _exact_maps(HA, HN, HL, HR, okA, finite, const, b, t)
    ctx.scores.update(exact)
    if exact.get("verdict"):
        return _exact_verdict(ctx, exact, raw.rows)
    okA = okA & finite(HN) & finite(HL) & finite(HR)
    if okA.sum() < _MIN_STAT_PAIRS:
        why = (f"only {int(okA.sum())} usable rows" + (f" ({n_const} constant)" if n_const else "")
               + " for a continuity test; no exact overlaps between rows.")
        return ctx.verdict(UNDETERMINED, evidence=why)
    A, N, L, R = A[okA], N[okA], L[okA], R[okA]
    keepf = A.reshape(-1, f).std(axis=0) > 0
    if not keepf.any():
        return ctx.verdict(UNDETERMINED, evidence="all features are constant.")
    anc = Anchors(raw.rows[okA], A[..., keepf], N[..., keepf], L[..., keepf], R[..., keepf])
    return replace(ctx, keep=keepf), anc


def _detect_one_step(ctx: Context, anc: Anchors) -> LayoutVerdict:
    """One step per row: which neighbour is closer; then rows permuted inside batches and batch
    coherence when that leaves it open."""
    v = _detect_t1(ctx, anc)
    if v.kind in (UNDETERMINED, LANES) and ctx.batch_size > 1 and ctx.global_pass:
        pv = _permuted_verdict(_next_batch(ctx, None), ctx)
        if pv is not None:
            return pv
        if v.kind == UNDETERMINED:
            return _global_t1(ctx)
    return v


def _detect_stat(ctx: Context, anc: Anchors) -> LayoutVerdict:
    """T >= 2 without exact overlaps: continuity of the junctions of each successor map, then (when
    neither map continues) rows permuted inside batches and successors anywhere."""
    js = _junction_stats(ctx, anc)
    v = _no_signal(ctx, js) or _map_verdict(ctx, anc, js)
    if v is not None:
        return v
    cN, cL, sig = js.related_natural, js.related_lanes, js.signal
    if not ctx.global_pass:
        return ctx.verdict(INDEPENDENT, evidence=(
            f"no row continues row i of the next batch ({cL:.2f}) or the next sample ({cN:.2f}; 0.5 = "
            f"like random rows) although values are continuous inside rows ({sig:.2f})."),
            confidence=_conf(sig))
    pv = _permuted_verdict(_next_batch(ctx, js.jm), ctx)
    if pv is not None:
        return pv
    return _global(ctx, js)
