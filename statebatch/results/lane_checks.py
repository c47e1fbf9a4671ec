"""What :func:`~statebatch.arrange_stateful` checks and warns about before it binds a lane plan to the
data: the targets (the data's next values, or arrays aligned with the steps), the pad value in the
data's dtype, and an epoch that is mostly padding.
"""

from __future__ import annotations

from typing import Any, NamedTuple
import warnings

import numpy as np

from .._args import percent, plural
from ..errors import LengthMismatchError, ParameterError, StatebatchWarning
from ..plans.lanes import LanePlan
from ..sources.base import RowSource
from ..sources.options import InputOptions
from ..sources.series import SeriesSet, aligned_targets, check_finite_series, source_of

__all__ = ["LaneTargets", "check_pad_value", "lane_targets", "warn_padding", "PADDING_WARNING"]


class LaneTargets(NamedTuple):
    """Where lanes read targets: ``source`` rows ``shift`` after the input rows; ``mode`` ``"next"`` (the
    data's own values ``horizon`` later), ``"aligned"`` (arrays given per step) or None (no targets)."""

    source: RowSource | None = None
    shift: int = 0
    mode: str | None = None


def lane_targets(ss: SeriesSet, targets: Any, *, horizon: int, target_features: Any,
                 opts: InputOptions) -> LaneTargets:
    """The targets of lanes over ``ss`` (checked: lengths, NaN/inf as ``opts`` allows).

    Examples
    --------
    >>> import numpy as np
    >>> import statebatch as sb
    >>> from statebatch.sources.series import as_series
    >>> t = lane_targets(as_series(np.arange(5.0)), "next", horizon=2, target_features=None, opts=sb.InputOptions())
    >>> t.mode, t.shift
    ('next', 2)
    """
    ysource, yshift, target_mode = None, 0, None
    if isinstance(targets, str) and targets == "next":
        target_mode = "next"
        ysource = ss.next_value_source(target_features)
        yshift = horizon
    elif targets is None:
        if target_features is not None:
            raise ParameterError("target_features has no meaning with targets=None.", "drop target_features.")
    elif isinstance(targets, str):
        raise ParameterError(f"targets={targets!r} is not understood.",
                             "pass 'next', None, or target arrays aligned with the series.")
    else:
        if horizon != 1:
            raise ParameterError(f"horizon={horizon} applies to targets='next'; aligned target arrays give the target "
                                 "of each step themselves.", "shift the target arrays yourself, or use targets='next'.")
        target_mode = "aligned"
        tl = aligned_targets(targets, ss)
        if any(len(t) != n for t, n in zip(tl, ss.lengths)):
            raise LengthMismatchError(
                f"targets must be aligned row by row with the series: got lengths {[len(t) for t in tl][:5]} "
                f"for series of lengths {ss.lengths[:5].tolist()}.",
                "pass one target array per series, each as long as its series.")
        tl = [t[:, None] if t.ndim == 1 else t for t in tl]
        ysource = source_of(tl)
        check_finite_series(SeriesSet(ysource, ss.offsets, ss.ids), what="targets", allow_nan=opts.allow_nan,
                            allow_inf=opts.allow_inf)
    return LaneTargets(ysource, yshift, target_mode)


#: An epoch with more padding than this warns (StatebatchWarning): the model then mostly runs on steps
#: of weight 0, almost always because batch_size (lanes) or timesteps is too large for the data. Lanes
#: that never hold data warn at any padding. (Many series of different lengths in as many lanes are
#: often half padding, legitimately: that alone does not warn.)
PADDING_WARNING = 0.75


def warn_padding(plan: LanePlan) -> None:
    """Warn when most of the epoch is padding, naming the idle lanes and the fix (fewer lanes, shorter
    timesteps); legal (idle lanes carry weight 0), but the compute and the loss's denominator are wasted.

    Examples
    --------
    >>> import warnings
    >>> from statebatch.plans.lanes import plan_lanes
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_padding(plan_lanes([4], timesteps=2, batch_size=4, targets=None))
    >>> str(caught[0].message)[:60]
    'padding is 50.00% of the epoch: 2 lanes of 4 never hold data'
    """
    frac = plan.padding_fraction
    busy = int((plan.valid > 0).any(axis=0).sum())  # lanes that hold data in some batch
    idle = plan.batch_size - busy
    if frac <= PADDING_WARNING and not idle:
        return
    real = int(plan.valid.sum())
    t = plan.timesteps
    if idle:
        why = f"{plural(idle, 'lane')} of {plan.batch_size} {'never holds' if idle == 1 else 'never hold'} data"
        fix = f"use fewer lanes (batch_size={max(1, busy)} or less), or more data"
    else:
        why = (f"the data fills only {percent(1 - frac)} of {plural(plan.batch_size, 'lane')} x "
               f"{plural(plan.n_batches, 'batch')} x {t} timesteps")
        fix = (f"use shorter timesteps (each lane holds about {plural(real // plan.batch_size, 'real step')}) or "
               "fewer lanes, or more data")
    warnings.warn(StatebatchWarning(
        f"padding is {percent(frac)} of the epoch: {why} ({plural(real, 'real step')} in "
        f"{plural(plan.n_batches, 'batch')} of {plan.batch_size} x {t}). The model computes on the padded steps "
        f"(sample weight 0) and the loss divides by them. Fix: {fix}."), stacklevel=3)


def check_pad_value(pad_value: Any, dtype: np.dtype) -> Any:
    """``pad_value`` in the data's dtype; refused when it cannot be represented (NaN in integers...) or is
    not finite (a NaN or inf step times its sample weight 0 is still NaN in the loss).

    Examples
    --------
    >>> import numpy as np
    >>> check_pad_value(0, np.dtype("int32"))
    0
    >>> check_pad_value(0.5, np.dtype("int32"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    statebatch.errors.ParameterError: pad_value=0.5 cannot be stored in the data's dtype int32.
      Fix: pass an integer pad_value, or convert the data with dtype='float32'.
    """
    if not np.isfinite(pad_value):
        kind = "NaN" if np.isnan(pad_value) else "inf"  # inf x 0 is NaN too: the loss is NaN either way
        raise ParameterError(f"pad_value={pad_value!r} is not finite: padded steps carry sample weight 0, but {kind} x 0 "
                             "is NaN, so the loss would be NaN.", "pass a finite pad_value, e.g. 0.0.")
    if np.issubdtype(dtype, np.integer) or dtype.kind == "b":
        if not np.isfinite(pad_value) or float(pad_value) != int(pad_value):
            raise ParameterError(f"pad_value={pad_value!r} cannot be stored in the data's dtype {dtype}.",
                                 "pass an integer pad_value, or convert the data with dtype='float32'.")
        info = np.iinfo(dtype) if dtype.kind != "b" else None
        if info is not None and not info.min <= int(pad_value) <= info.max:
            raise ParameterError(f"pad_value={pad_value!r} is outside the range of {dtype}.", "pass a value in range.")
    return pad_value
