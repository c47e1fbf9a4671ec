"""The verdict of the layout detector, and the context its steps share.

:class:`LayoutVerdict` is what :func:`~statebatch.checking.layout.detect_layout` returns. Its steps
(:mod:`.exact`, :mod:`.statistical`, :mod:`.permuted`, :mod:`.shuffled`) read one
:class:`Context` (the array, the batch size, the random generator, the features that vary, the step
hash, and the scores gathered so far) and the sampled :class:`Anchors`, instead of a dozen
arguments each; :meth:`Context.verdict` fills in what every verdict reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...results.provenance import LANES, MISTAKES

_SHUFFLED_FIX = ("the rows were shuffled: keep lanes in order (row i of batch k+1 must continue row i of batch k) "
                 "-- rebuild X with statebatch.arrange_stateful(series, timesteps, batch_size) and pass "
                 "shuffle=False to model.fit.")


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


def _rc(j: int, b: int) -> str:
    return f"row {j % b} of batch {j // b}"


def _lane_order(idx: np.ndarray, b: int) -> np.ndarray | None:
    m = idx.size // b
    if m == 0:
        return None
    return idx[: b * m].reshape(b, m).T.ravel()


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


def _no_rows() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Context:
    """What every step of the detector reads.

    Attributes
    ----------
    X : ndarray ``(n, T, F)``
        The array as given (rows are read lazily: a memmap stays a memmap).
    batch_size : int
        ``B``: row ``i`` of batch ``k`` is sample ``k * B + i``.
    rng : numpy Generator
        The one random stream of a detection (the verdict is a pure function of the seed).
    max_rows : int
        Anchor rows compared (bounds the cost).
    global_pass : bool
        Whether to search for successors anywhere (shuffled lanes); False for the transposed
        reading of a possibly channels-first X.
    scores : dict
        The statistics gathered so far (shared with every verdict made from this context).
    keep : ndarray ``(F,)`` of bool
        Features that vary among the anchor rows (the statistical steps read only those).
    hash_weights, hash_features : ndarray
        The step hash: weights and the features they combine.
    sampled, rows_checked : bool, int
        Whether anchor rows were sampled, and how many.
    """

    X: np.ndarray
    batch_size: int
    rng: np.random.Generator
    max_rows: int
    global_pass: bool
    scores: dict[str, Any] = field(default_factory=dict)
    keep: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    hash_weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hash_features: np.ndarray = field(default_factory=_no_rows)
    sampled: bool = False
    rows_checked: int = 0

    @property
    def n(self) -> int:
        """Rows of X."""
        return int(self.X.shape[0])

    @property
    def t(self) -> int:
        """Timesteps per row."""
        return int(self.X.shape[1])

    @property
    def n_keep(self) -> int:
        """Features that vary."""
        return int(self.keep.sum())

    def verdict(self, kind: str, **kw: Any) -> LayoutVerdict:
        """A :class:`LayoutVerdict` with what every verdict reports (batch size, rows, sampling,
        scores) filled in from this context."""
        return LayoutVerdict(kind, batch_size=self.batch_size, n_rows=self.n, sampled=self.sampled,
                             rows_checked=self.rows_checked, scores=self.scores, **kw)


@dataclass(frozen=True)
class Anchors:
    """The sampled anchor rows and the rows each is compared with, float64 ``(S, T, F')`` (only the
    features that vary).

    rows : ``(S,)`` the anchors' sample numbers ``j``; A : rows ``j``; N : ``j + 1`` (natural
    order); L : ``j + B`` (its lane in the next batch); R : random rows (no relation).
    """

    rows: np.ndarray
    A: np.ndarray
    N: np.ndarray
    L: np.ndarray
    R: np.ndarray
