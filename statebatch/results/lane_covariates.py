"""Static and known-future covariates of stateful lanes (``arrange_stateful(static_cols=..., known_cols=...)``).

A lane holds chunks of series; batch ``k`` of a lane plan says which series (``plan.series[k]``) and
which steps (``plan.step[k]``, ``plan.valid[k]``) each lane holds. :class:`LaneCovariates` keeps one
static vector per series and the known columns row by row (in the series' row order), and gathers
batch ``k``'s covariates from that same plan with one fancy-index gather per table, so they can never
drift from the inputs they sit next to. With covariates every batch is a mapping
(:data:`LANE_KEYS`):

- ``past`` ``(B, T, F)``: the lane inputs, as ``X`` without covariates.
- ``future`` ``(B, T, K)`` (with ``known_cols``): at input step ``t``, the known columns of the step
  whose value is its target (``t + horizon``), as ``make_windows``' ``future`` holds them over the
  target steps. Padded steps: 0.
- ``static`` ``(B, S)`` (with ``static_cols``): the static vector of the series each lane holds in
  that batch (numeric values, other columns as integer codes with their vocabulary kept). Idle lanes: 0.
- ``y`` and ``sample_weight``: as without covariates (weight 0 on padding).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
import sys
from typing import Any, Mapping, Sequence

import numpy as np

from .._args import plain
from ..errors import DataValueError, ParameterError, ShapeError
from ..materialise.covariates import static_table
from ..plans.lanes import LanePlan
from ..sources.options import InputOptions
from ..sources.series import SeriesSet, _is_pandas
from .forecast_windows import _frame_features
from ..materialise.forecast import _names
from ..materialise.input_names import model_inputs

__all__ = ["LANE_KEYS", "LaneCovariates", "build_lane_covariates", "covariate_options", "lane_inputs",
           "covariate_fit_kwargs"]

#: Every key a stateful batch with covariates may hold, in this order: ``future`` only with ``known_cols``,
#: ``static`` only with ``static_cols``, ``y`` and ``sample_weight`` only with targets.
LANE_KEYS = ("past", "future", "static", "y", "sample_weight")


@dataclass(frozen=True, eq=False)
class LaneCovariates:
    """The covariate tables of an arrangement and the gather that cuts one batch (or epoch) from them.

    Attributes
    ----------
    static : ndarray ``(n_series, S)`` or None
        One vector per series (``static_cols``); None when not asked for.
    known_rows : ndarray ``(rows, K)`` or None
        The known columns of every row, in the row order of the series set; None when not asked for.
    offsets : int64 ``(n_series + 1,)``
        First row of each series in ``known_rows``.
    shift : int
        Rows between an input step and the step its target (and known values) are read from (``horizon``).

    Examples
    --------
    >>> import numpy as np
    >>> from statebatch.plans.lanes import plan_lanes
    >>> cov = LaneCovariates(static=np.array([[7.0], [9.0]]), known_rows=np.arange(7.0)[:, None] * 10,
    ...                      offsets=np.array([0, 4, 7]), shift=1)
    >>> plan = plan_lanes([4, 3], timesteps=2, batch_size=2)
    >>> out = cov.gather(plan, 0)
    >>> out["static"][:, 0], out["future"][:, :, 0]
    (array([7., 9.]), array([[10., 20.],
           [50., 60.]]))
    """

    static: np.ndarray | None
    known_rows: np.ndarray | None
    offsets: np.ndarray
    shift: int
    static_names: list = field(default_factory=list)
    known_names: list = field(default_factory=list)
    static_vocab: dict = field(default_factory=dict)

    def keys(self, has_targets: bool) -> tuple[str, ...]:
        """The keys of every batch, in :data:`LANE_KEYS` order."""
        return tuple(k for k in LANE_KEYS if k == "past" or (k == "future" and self.known_rows is not None)
                     or (k == "static" and self.static is not None) or (k in ("y", "sample_weight") and has_targets))

    def gather(self, plan: LanePlan, k: int | slice, lanes: slice | None = None) -> dict[str, np.ndarray]:
        """``static`` ``(B, S)`` and ``future`` ``(B, T, K)`` of batch ``k`` (``slice(None)``: the whole epoch
        in batch order, ``(n_batches * B, ...)``); only ``lanes`` of batch ``k`` when given. New arrays."""
        series, step, valid = (a[k].reshape(-1) for a in (plan.series, plan.step, plan.valid))
        if lanes is not None:
            series, step, valid = series[lanes], step[lanes], valid[lanes]
        real = series >= 0
        out: dict[str, np.ndarray] = {}
        if self.known_rows is not None:
            length = plan.batch_length(k) if isinstance(k, (int, np.integer)) else plan.timesteps
            t = np.arange(length, dtype=np.int64)
            inside = (t[None, :] < valid[:, None]) & real[:, None]
            first = np.where(real, self.offsets[np.maximum(series, 0)] + step + self.shift, 0)
            rows = np.where(inside, first[:, None] + t[None, :], 0)
            future = self.known_rows[rows]  # one gather: (B, T, K)
            future[~inside] = 0
            out["future"] = future
        if self.static is not None:
            static = self.static[np.maximum(series, 0)]  # one gather: (B, S)
            static[~real] = 0
            out["static"] = static
        return out

    def batch(self, arrays: Sequence[np.ndarray], plan: LanePlan, k: int | slice,
              lanes: slice | None = None) -> dict[str, np.ndarray]:
        """The mapping of a batch whose plain arrays are ``arrays`` (``(X, y, w)`` or ``(X,)``)."""
        out = {"past": arrays[0]}
        out.update(self.gather(plan, k, lanes))
        if len(arrays) > 1:
            out["y"], out["sample_weight"] = arrays[1], arrays[2]
        return {key: out[key] for key in LANE_KEYS if key in out}


def covariate_options(data: Any, opts: InputOptions, static_cols: Any,
                      known_cols: Any) -> tuple[Any, InputOptions, list, list]:
    """The data (a pandas frame), the input options with the observed ``feature_cols`` (every column but the
    id, time, known and static ones unless given) and the checked ``static_cols``/``known_cols`` lists.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"id": [0, 0], "t": [0, 1], "v": [1.0, 2.0], "price": [3.0, 4.0], "shop": ["a", "a"]})
    >>> _, opts, static, known = covariate_options(df, InputOptions(id_col="id", time_col="t"), ["shop"], ["price"])
    >>> opts.feature_cols, static, known
    (['v'], ['shop'], ['price'])
    """
    static, known = _names(static_cols, "static_cols"), _names(known_cols, "known_cols")
    if not isinstance(data, np.ndarray):
        from ..sources.frames import to_pandas_or_numpy

        data = to_pandas_or_numpy(data)
    if not ("pandas" in sys.modules and _is_pandas(data, "DataFrame")):
        raise ParameterError(f"static_cols/known_cols name DataFrame columns, but data is {type(data).__name__}.",
                             "pass a long DataFrame with those columns, with id_col=... and time_col=....")
    feats = None if opts.feature_cols is None else _names(opts.feature_cols, "feature_cols")
    feats = _frame_features(data, opts, known, static, feats)
    return data, replace(opts, feature_cols=feats), static, known


def build_lane_covariates(frame: Any, ss: SeriesSet, *, static_cols: list, known_cols: list, target_mode: str | None,
                          shift: int, id_col: Any) -> LaneCovariates:
    """The :class:`LaneCovariates` of ``frame``'s ``static_cols`` and ``known_cols`` for the series ``ss`` read
    from it. Known columns need next-value targets (``targets="next"`` or ``target_cols``): their values sit
    next to the input whose target step they belong to.

    Examples
    --------
    >>> import pandas as pd
    >>> from statebatch.sources.series import as_series
    >>> df = pd.DataFrame({"id": ["a", "a", "b"], "v": [1.0, 2.0, 3.0], "p": [5.0, 6.0, 7.0]})
    >>> ss = as_series(df, id_col="id", feature_cols=["v"])
    >>> cov = build_lane_covariates(df, ss, static_cols=["id"], known_cols=["p"], target_mode="next", shift=1,
    ...                             id_col="id")
    >>> cov.static[:, 0], cov.known_rows[:, 0], cov.static_vocab
    (array([0, 1]), array([5., 6., 7.]), {'id': ['a', 'b']})
    """
    fdt = np.result_type(ss.dtype, np.float32)
    static: np.ndarray | None = None
    static_names: list = []
    vocab: dict = {}
    if static_cols:
        static, static_names, vocab = static_table(frame, static_cols, ss, fdt, categorical=[id_col])
    known = None
    if known_cols:
        if target_mode != "next":
            raise ParameterError(
                "known_cols sit next to each input step as the known values of the step it predicts, so they need "
                f"next-value targets (targets={'None' if target_mode is None else 'aligned arrays'} here).",
                "pass targets='next' (the default) or target_cols=[...]; or drop known_cols.")
        known = _known_rows(frame, known_cols, ss, fdt)
    return LaneCovariates(static=static, known_rows=known, offsets=np.asarray(ss.offsets, dtype=np.int64),
                          shift=int(shift), static_names=static_names, known_names=[str(c) for c in known_cols],
                          static_vocab=vocab)


def _known_rows(frame: Any, cols: list, ss: SeriesSet, fdt: np.dtype) -> np.ndarray:
    """The known columns row by row in the series' order, as floats; NaN/inf refused (they are known)."""
    raw = frame[cols]
    bad = [c for c in cols if getattr(raw[c].dtype, "kind", "O") not in "iufb"]
    if bad:
        raise DataValueError(f"known_cols {bad} are not numeric.",
                             "encode them as numbers first (e.g. integer codes, or one column per category).")
    values = raw.to_numpy(dtype=np.float64)
    if ss.row_order is not None:
        values = values[ss.row_order]
    if len(values) != int(ss.offsets[-1]):
        raise ShapeError(f"known_cols have {len(values)} rows for {int(ss.offsets[-1])} data rows.",
                         "pass known columns of the same frame as the data.")
    if not np.isfinite(values).all():
        row, col = (int(a[0]) for a in np.nonzero(~np.isfinite(values)))
        s = int(np.searchsorted(ss.offsets, row, side="right") - 1)
        raise DataValueError(f"known column {cols[col]!r} is NaN/inf at series {plain(ss.ids[s])!r} step "
                             f"{row - int(ss.offsets[s])}; known covariates must be known at every step.",
                             "fill them (they are known in advance), or pass the column as a feature instead.")
    return values.astype(fdt)


def lane_inputs(batch: Mapping[str, Any], model: Any = None) -> Any:
    """The model inputs of a lane batch (or epoch) with covariates: a dict of ``past``, ``future``, ``static``
    (those present), or with ``model=`` exactly the model's inputs by name (a dict for a dict-input model, a
    list in its input order, or the one array), as :func:`~statebatch.split_xy` cuts forecasting windows.

    Examples
    --------
    >>> import numpy as np
    >>> batch = {"past": np.zeros((2, 3, 1)), "static": np.ones((2, 1)), "y": np.zeros((2, 3, 1))}
    >>> sorted(lane_inputs(batch))
    ['past', 'static']
    """
    if model is None:
        return {k: batch[k] for k in ("past", "future", "static") if k in batch}
    names, form = model_inputs(model, [k for k in batch if k not in ("y", "sample_weight")])
    if form == "dict":
        return {k: batch[k] for k in names}
    return [batch[k] for k in names] if form == "list" else batch[names[0]]


def covariate_fit_kwargs(epoch: Mapping[str, Any], batch_size: int, model: Any = None) -> dict[str, Any]:
    """``model.fit`` keywords of an epoch with covariates (:meth:`Arranged.arrays`): ``x`` the model inputs
    (:func:`lane_inputs`), ``y`` and ``sample_weight`` when there are targets, the lanes' batch size, no shuffle.

    Examples
    --------
    >>> import numpy as np
    >>> epoch = {"past": np.zeros((4, 3, 1)), "static": np.ones((4, 1)), "y": np.zeros((4, 3, 1)),
    ...          "sample_weight": np.ones((4, 3))}
    >>> kw = covariate_fit_kwargs(epoch, 2)
    >>> sorted(kw["x"]), kw["batch_size"], kw["shuffle"], kw["sample_weight"].shape
    (['past', 'static'], 2, False, (4, 3))
    """
    kw: dict[str, Any] = {"x": lane_inputs(epoch, model), "batch_size": batch_size, "shuffle": False}
    if "y" in epoch:
        kw.update(y=epoch["y"], sample_weight=epoch["sample_weight"])
    return kw
