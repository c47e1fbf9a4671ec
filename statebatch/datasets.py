"""Small real data sets shipped with statebatch (see ``statebatch/data/README.md`` for sources)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - types only
    import pandas as pd

DATA_DIR = Path(__file__).with_name("data")


def load_co2() -> "pd.DataFrame":
    """Weekly Mauna Loa CO2 (ppmv), March 1958 - December 2001, public domain.

    Returns
    -------
    pandas.DataFrame
        Indexed by date (weekly, ``DatetimeIndex``) with one column ``co2``; 2,284 rows, 59 of them
        missing (NaN) as in the source.

    Examples
    --------
    >>> co2 = load_co2()
    >>> co2.shape, str(co2.index[0].date())
    ((2284, 1), '1958-03-29')
    """
    import pandas as pd

    df = pd.read_csv(DATA_DIR / "co2_weekly.csv", dtype={"date": str})
    df.index = pd.to_datetime(df.pop("date"), format="%Y%m%d")
    df.index.name = "date"
    return df


def _read_ts(path: Path) -> tuple[list, list[str]]:
    """Minimal reader for the .ts format: dimensions separated by ':', the class label last."""
    import numpy as np

    sequences, labels = [], []
    in_data = False
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith("@data"):
            in_data = True
            continue
        if not in_data or line.startswith("@"):
            continue
        *dims, label = line.split(":")
        sequences.append(np.array([[float(v) for v in d.split(",")] for d in dims], dtype=np.float32).T)
        labels.append(label)
    return sequences, labels


def load_japanese_vowels() -> dict[str, Any]:
    """UCI Japanese Vowels: 640 sequences of 7-29 frames x 12 LPC coefficients, nine speakers.

    Returns
    -------
    dict with ``X_train``, ``X_test`` (lists of float32 arrays ``(length, 12)``) and ``y_train``,
    ``y_test`` (int arrays, speaker 0-8).

    Examples
    --------
    >>> data = load_japanese_vowels()
    >>> len(data["X_train"]), data["X_train"][0].shape, data["y_train"][:3].tolist()
    (270, (20, 12), [0, 0, 0])
    """
    import numpy as np

    out: dict[str, Any] = {}
    for split in ("train", "test"):
        seqs, labels = _read_ts(DATA_DIR / "japanese_vowels" / f"JapaneseVowels_{split.upper()}.ts")
        out[f"X_{split}"] = seqs
        out[f"y_{split}"] = np.array([int(v) - 1 for v in labels], dtype=np.int64)
    return out


def load_us_macro() -> "pd.DataFrame":
    """US quarterly macroeconomic series 1959Q1-2009Q3 (public domain; statsmodels ``macrodata``).

    Returns
    -------
    pandas.DataFrame
        Indexed by quarter (``PeriodIndex``), 203 rows x 12 numeric columns (``realgdp``, ``realcons``,
        ``realinv``, ``realgovt``, ``realdpi``, ``cpi``, ``m1``, ``tbilrate``, ``unemp``, ``pop``, ``infl``,
        ``realint``).

    Examples
    --------
    >>> macro = load_us_macro()
    >>> macro.shape, str(macro.index[0])
    ((203, 12), '1959Q1')
    """
    import pandas as pd

    df = pd.read_csv(DATA_DIR / "us_macro_quarterly.csv")
    df.index = pd.PeriodIndex.from_fields(year=df.pop("year").astype(int), quarter=df.pop("quarter").astype(int),
                                          freq="Q")
    df.index.name = "quarter"
    return df
