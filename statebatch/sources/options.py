"""One object for the input options every entry point shares.

``make_windows``, ``arrange_stateful``, ``bucket_batches``, the scikit-learn transformers and
``statebatch.dask.prepare`` read their input the same way: which columns of a frame are the series
id, the time, the features and the targets; the dtype; whether NaN and inf may pass; what to do
with holes in the time stamps. :class:`InputOptions` holds them once (one docstring, one set of
checks); each entry point also takes the same names as keywords for the common case, and
``options=InputOptions(...)`` to pass them together (the keywords then must not repeat one).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

from .._args import check_bool, check_choice
from ..errors import ParameterError

__all__ = ["InputOptions", "GAPS"]

#: What a hole in the time stamps does: ``"error"`` refuses it, ``"split"`` cuts the series there
#: into pieces (ids ``(id, piece)``), ``"accept"`` reads the rows as consecutive anyway.
GAPS = ("error", "split", "accept")


@dataclass(frozen=True)
class InputOptions:
    """How an entry point reads its input (frames, arrays, stores); one set of names everywhere.

    Parameters
    ----------
    id_col, time_col : str, optional
        Long frames: the column naming each row's series, and its time stamp (rows are sorted by it
        within each series; holes are found in it, see ``gaps``).
    feature_cols, target_cols : sequence of str, optional
        Frame columns used as inputs, and as targets (``None``: every other numeric column as
        features; no target columns).
    dtype : numpy dtype, optional
        Cast the data once on reading (``None``: kept as given).
    allow_nan : bool, default False
        Let NaN through (a model that masks them). Refused by default, naming the first one.
    allow_inf : bool, default False
        Let +-inf through. Separate from NaN, as scikit-learn separates them: a masked NaN is a
        missing value, an inf is almost always a bug upstream (a division by zero, a log of 0).
    gaps : {"error", "split", "accept"}, default "error"
        Holes in the time stamps of a series: refused, split into pieces, or read as consecutive.

    Examples
    --------
    >>> import statebatch as sb
    >>> opts = sb.InputOptions(id_col="store", time_col="day", target_cols=["sales"])
    >>> opts.replace(allow_nan=True).allow_nan
    True
    >>> sb.InputOptions.resolve(opts, gaps="split").gaps
    'split'
    """

    id_col: str | None = None
    time_col: str | None = None
    feature_cols: Sequence[str] | None = None
    target_cols: Sequence[str] | None = None
    dtype: Any = None
    allow_nan: bool = False
    allow_inf: bool = False
    gaps: str = "error"

    def __post_init__(self) -> None:
        check_bool("allow_nan", self.allow_nan)
        check_bool("allow_inf", self.allow_inf)
        check_choice("gaps", self.gaps, GAPS)
        for name in ("id_col", "time_col"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise ParameterError(f"{name} must be a column name (str) or None, got {type(v).__name__}.",
                                     f"pass {name}='name_of_the_column'.")
        for name in ("feature_cols", "target_cols"):
            v = getattr(self, name)
            if isinstance(v, str):
                object.__setattr__(self, name, [v])  # one column given as a name: a list of one

    def replace(self, **changes: Any) -> "InputOptions":
        """A copy with some options changed (checked again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def resolve(cls, options: "InputOptions | None" = None, **given: Any) -> "InputOptions":
        """The options an entry point uses: ``options`` (or the defaults) with the keywords the caller
        passed (their value is not the default). A keyword that repeats one set in ``options`` with
        another value is refused, naming both."""
        if options is not None and not isinstance(options, InputOptions):
            raise ParameterError(f"options must be a statebatch.InputOptions, got {type(options).__name__}.",
                                 "pass options=sb.InputOptions(id_col=..., ...) or the same names as keywords.")
        base = options if options is not None else cls()
        defaults = cls()
        changes = {}
        for name, value in given.items():
            if name not in _FIELDS:
                raise ParameterError(f"{name} is not an input option.", f"input options: {', '.join(_FIELDS)}.")
            if _same(value, getattr(defaults, name)):
                continue
            if options is not None and not _same(getattr(options, name), getattr(defaults, name)) \
                    and not _same(getattr(options, name), value):
                raise ParameterError(f"{name} is given twice: {value!r} as a keyword and {getattr(options, name)!r} "
                                     "in options.", f"pass {name} in one place.")
            changes[name] = value
        return base.replace(**changes) if changes else base


_FIELDS = tuple(f.name for f in dataclasses.fields(InputOptions))


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a is b or a == b)
    except Exception:  # arrays and other values without a plain truth value
        return a is b
