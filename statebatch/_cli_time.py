"""Time stamps of a CLI table: the text of a ``--time-col`` read as dates/times (``--time-format``, or the
first of the common formats that reads every value; day/month-ambiguous text is refused)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from .errors import DataValueError, ParameterError

if TYPE_CHECKING:  # pragma: no cover - types only
    import pandas as pd

__all__ = ["parse_time_column"]


# Text time formats tried in turn when --time-format is not given. A format is used only if it reads every
# value of the column; day-first and month-first forms that both read every value are refused as ambiguous
# (a silent month/day swap would reorder the series), and so is text no format reads.
_TIME_FORMATS = ("ISO8601", "%Y/%m/%d", "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y%m%d", "%Y-%m", "%d.%m.%Y", "%b-%d-%Y",
                 "%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%d-%b-%Y", "%d %b %Y", "%b %d %Y", "%b %d, %Y",
                 "%d %B %Y", "%B %d %Y", "%B %d, %Y", "%Y-%m-%d %H:%M:%S%z", "%a %b %d %H:%M:%S %Y")
_AMBIGUOUS = (("%m/%d/%Y", "%d/%m/%Y"), ("%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M"),
              ("%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S"), ("%m-%d-%Y", "%d-%m-%Y"), ("%m/%d/%y", "%d/%m/%y"))


def _try_format(text, fmt: str):
    import pandas as pd

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas' "could not infer format" chatter: we name the format
            # utc=True: stamps with different offsets are one clock (UTC); naive stamps are kept as they are
            parsed = pd.to_datetime(text, format=fmt, utc=True)
    except (ValueError, TypeError, OverflowError):
        return None
    if isinstance(parsed, pd.Series):
        parsed = parsed.dt.tz_localize(None)
    else:
        parsed = parsed.tz_localize(None)
    return parsed if not parsed.isna().any() else None


def parse_time_column(df: "pd.DataFrame", time_col: str, time_format: str | None) -> tuple["pd.DataFrame", str | None]:
    """The table with ``time_col`` parsed to datetimes when it holds text, and the format used (or None).

    Numbers and datetimes are kept. Text is read with ``time_format`` (a strftime format) when given,
    else with the first of the common formats that reads every value; unreadable or day/month-ambiguous
    text is refused with the ``--time-format`` to pass.

    Examples
    --------
    >>> import pandas as pd
    >>> df, fmt = parse_time_column(pd.DataFrame({"t": ["02.01.2020", "03.01.2020"], "v": [1.0, 2.0]}), "t", None)
    >>> fmt, df["t"].dt.day.tolist()
    ('%d.%m.%Y', [2, 3])
    """
    import pandas as pd

    col = df[time_col]
    kind = getattr(col.dtype, "kind", "O")
    if time_format is None and kind in "iufmM":
        if kind in "iu" and len(col) and 10**7 <= col.min() and col.max() < 10**8 and \
                _try_format(col.astype(str), "%Y%m%d") is not None:
            # 19580329 sorts right as a number, but its steps are not regular: as dates, holes are found right
            print(f"note: --time-col {time_col!r} holds integers that read as dates (e.g. {col.iloc[0]}); pass "
                  "--time-format %Y%m%d to read them as dates")
        return df, None
    if col.isna().any():
        row = int(np.flatnonzero(col.isna().to_numpy())[0])
        raise DataValueError(f"--time-col {time_col!r} is empty in row {row} of the table (and maybe others).",
                             "fill in or drop the rows without a time stamp.")
    text = col.astype(str).str.strip()
    example = "--time-format '%d/%m/%Y' (day first) or --time-format '%Y-%m-%d %H:%M:%S'"
    if time_format is not None:
        parsed = _try_format(text, time_format)
        if parsed is None:
            bad = _first_unread(text, time_format)
            raise ParameterError(f"--time-format {time_format!r} does not read --time-col {time_col!r}: row {bad[0]} "
                                 f"holds {bad[1]!r}.", f"pass the strftime format of the column, e.g. {example}.")
        fmt = time_format
    else:
        fmt, parsed = None, None
        for candidate in _TIME_FORMATS:
            parsed = _try_format(text, candidate)
            if parsed is not None:
                fmt = candidate
                break
        if fmt is None:
            for a, b in _AMBIGUOUS:
                pa, pb = _try_format(text, a), _try_format(text, b)
                if pa is not None and pb is not None and not pa.equals(pb):
                    raise ParameterError(
                        f"--time-col {time_col!r} holds dates such as {text.iloc[0]!r} that read both day first and "
                        "month first; guessing would put the steps in a wrong order.",
                        f"pass --time-format '{b}' (day first) or --time-format '{a}' (month first).")
                if pa is not None or pb is not None:
                    fmt, parsed = (a, pa) if pa is not None else (b, pb)
                    break
        if fmt is None:
            bad = _first_unread(text, "ISO8601")
            raise ParameterError(f"--time-col {time_col!r} holds text that is not a date/time in a known format "
                                 f"(row {bad[0]}: {bad[1]!r}).",
                                 f"pass --time-format with the column's strftime format, e.g. {example}; or "
                                 f"--time-col none to keep the file order.")
    df = df.copy()
    df[time_col] = pd.Series(parsed).to_numpy()
    return df, fmt


def _first_unread(text, fmt: str) -> tuple[int, str]:
    """Row and value of the first time stamp ``fmt`` does not read (for the message)."""
    for i, v in enumerate(text.tolist()):
        if _try_format([v], fmt) is None:
            return i, v
    return 0, str(text.iloc[0])
