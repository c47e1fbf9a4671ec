"""Small real data sets shipped with statebatch (see ``statebatch/data/README.md`` for sources)."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).with_name("data")


def load_co2():
    """Weekly Mauna Loa CO2 (ppmv), March 1958 - December 2001, public domain.

    Returns
    -------
    pandas.DataFrame
        Indexed by date (weekly, ``DatetimeIndex``) with one column ``co2``; 2,284 rows, 59 of them
        missing (NaN) as in the source.
    """
    import pandas as pd

    df = pd.read_csv(DATA_DIR / "co2_weekly.csv", dtype={"date": str})
    df.index = pd.to_datetime(df.pop("date"), format="%Y%m%d")
    df.index.name = "date"
    return df
