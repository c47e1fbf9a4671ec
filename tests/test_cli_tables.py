"""The CLI on real-looking tables: date/time text in the time column, advice in CLI terms, one padding figure."""

import argparse
import re

import numpy as np
import pandas as pd
import pytest

import statebatch as sb
from statebatch.cli import main, parse_time_column

SYMBOLS = {"AAA": 60, "BBB": 48, "CCC": 37, "DDD": 55}


def stock_table(date_format="%Y-%m-%d", seed=0, shuffle_rows=True):
    """Monthly closing prices and volumes of four symbols, as a data vendor's CSV export holds them."""
    rng = np.random.default_rng(seed)
    parts = []
    for k, (sym, n) in enumerate(SYMBOLS.items()):
        dates = pd.date_range("2000-01-01", periods=n, freq="MS") + pd.Timedelta(days=k)  # day 1..4 of each month
        price = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.05, n))), 2)
        parts.append(pd.DataFrame({"date": dates.strftime(date_format), "symbol": sym, "close": price,
                                   "volume": rng.integers(1000, 5000, n).astype(float)}))
    df = pd.concat(parts, ignore_index=True)
    if shuffle_rows:  # exports are often sorted by date across symbols, or not at all
        df = df.iloc[np.random.default_rng(seed + 1).permutation(len(df))].reset_index(drop=True)
    return df


def by_hand(df, date_format):
    """Each symbol's (close, volume) rows in date order, parsed with the format known to be right."""
    d = df.assign(when=pd.to_datetime(df["date"], format=date_format)).sort_values(["symbol", "when"])
    groups = dict(tuple(d.groupby("symbol")))
    return {s: groups[s][["close", "volume"]].to_numpy() for s in pd.unique(df["symbol"])}  # first-seen order


def cli_windows(csv, *extra):
    """The windows the CLI builds from a table (via its own parser and table reader)."""
    from statebatch import cli

    ns = argparse.Namespace(file=str(csv), id_col="symbol", time_col="date", target=None, timesteps=6, stride=1,
                            batch_size=None, time_format=None, dtype="float64", stateful=False, gaps="error")
    for k, v in zip(extra[::2], extra[1::2]):
        setattr(ns, k, v)
    return cli._from_table(cli.load_arrays(csv)["table"], ns, False)[0]


@pytest.mark.parametrize("fmt, option", [("%Y-%m-%d", None), ("%Y-%m-%d %H:%M:%S", None), ("%d.%m.%Y", None),
                                         ("%d-%b-%Y", None), ("%Y/%m/%d", None), ("%d/%m/%Y", "%d/%m/%Y"),
                                         ("%m/%d/%Y", "%m/%d/%Y")])
def test_cli_reads_date_text_and_orders_by_it(tmp_path, fmt, option):
    df = stock_table(fmt)
    csv = tmp_path / "stocks.csv"
    df.to_csv(csv, index=False)
    X = cli_windows(csv, "time_format", option)
    series = by_hand(df, fmt)
    # windows of 6 steps from each symbol in date order, features in column order (close, volume)
    expected = np.concatenate([np.stack([v[i:i + 6] for i in range(len(v) - 5)]) for v in series.values()])
    np.testing.assert_array_equal(X, expected)


def test_cli_check_stocks_csv_with_iso_dates(tmp_path, capsys):
    csv = tmp_path / "stocks.csv"
    stock_table().to_csv(csv, index=False)
    rc = main(["check", str(csv), "--id-col", "symbol", "--time-col", "date", "--target", "close",
               "--timesteps", "6", "--batch-size", "4", "--stateful"])
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    assert "4 series (by 'symbol'), ordered by 'date'" in out and "'ISO8601'" in out
    # one padding figure: the arrangement's own repr. By hand: the last step of each symbol is held back for
    # the next-step target, so the real steps are sum(n - 1) = 196; every batch holds 4 lanes x 6 steps.
    n_batches = int(re.search(r"batches=(\d+)", out).group(1))
    real = sum(n - 1 for n in SYMBOLS.values())
    assert f"padding={1 - real / (n_batches * 4 * 6):.2%}" in out
    df = stock_table()
    df["date"] = pd.to_datetime(df["date"])
    a = sb.arrange_stateful(df, 6, 4, id_col="symbol", time_col="date", feature_cols=["volume"],
                            target_cols=["close"], targets="next", dtype="float32")
    assert repr(a) in out  # the same arrangement in Python prints the same line, padding included
    assert "astype" not in out and "pd.to_datetime" not in out


def test_cli_advice_names_cli_options_not_python(tmp_path, capsys):
    csv = tmp_path / "stocks.csv"
    stock_table().to_csv(csv, index=False)
    main(["check", str(csv), "--id-col", "symbol", "--time-col", "date", "--timesteps", "6", "--dtype", "float64"])
    out = capsys.readouterr().out
    assert "float64" in out and "--dtype float32" in out and "astype" not in out
    main(["check", str(csv), "--id-col", "symbol", "--time-col", "date", "--timesteps", "6"])
    assert "float64" not in capsys.readouterr().out  # float32 by default: nothing to advise


@pytest.mark.parametrize("dates, option, needle", [
    (["2000-01-01", "yesterday"], None, "row 1: 'yesterday'"),
    (["01/02/2000", "01/03/2000"], None, "--time-format '%d/%m/%Y' (day first) or --time-format '%m/%d/%Y'"),
    (["2000-01-01", "2000-02-01"], "%d/%m/%Y", "--time-format '%d/%m/%Y' does not read"),
])
def test_cli_unreadable_time_text_is_refused_with_a_cli_fix(tmp_path, capsys, dates, option, needle):
    csv = tmp_path / "bad.csv"
    pd.DataFrame({"date": dates * 10, "symbol": np.repeat(["A", "B"], 10), "v": np.arange(20.0)}).to_csv(csv, index=False)
    args = ["check", str(csv), "--id-col", "symbol", "--time-col", "date", "--timesteps", "3"]
    assert main(args + (["--time-format", option] if option else [])) == 2
    err = capsys.readouterr().err
    assert "ParameterError" in err and needle in err and "--time-format" in err
    assert "pd.to_datetime" not in err and "df[" not in err and "please report" not in err


def test_cli_time_format_without_time_col_is_refused(tmp_path, capsys):
    csv = tmp_path / "one.csv"
    pd.DataFrame({"v": np.arange(30.0)}).to_csv(csv, index=False)
    assert main(["check", str(csv), "--timesteps", "3", "--time-format", "%Y"]) == 2
    assert "--time-col" in capsys.readouterr().err


def test_parse_time_column_keeps_numbers_and_reads_offsets_as_one_clock():
    df = pd.DataFrame({"t": [3, 1, 2]})
    assert parse_time_column(df, "t", None) == (df, None)
    got, fmt = parse_time_column(pd.DataFrame({"t": ["2001-01-01T00:30:00+01:00", "2001-01-01T00:00:00Z"]}), "t", None)
    assert fmt == "ISO8601" and list(got["t"]) == [pd.Timestamp("2000-12-31 23:30"), pd.Timestamp("2001-01-01")]


def test_cli_explain_of_a_table_shows_the_same_padding_as_the_arrangement(tmp_path, capsys):
    csv = tmp_path / "stocks.csv"
    stock_table().to_csv(csv, index=False)
    assert main(["explain", str(csv), "--id-col", "symbol", "--time-col", "date", "--target", "close",
                 "--timesteps", "6", "--batch-size", "4", "--stateful"]) == 0
    out = capsys.readouterr().out
    figure = re.search(r"padding=(\d+\.\d\d%)", out).group(1)
    assert f"padding: {figure} of steps" in out  # explain of the lanes, not of a bare X: one figure
    assert "4 series packed into 4 lanes" in out


def weekly_readings(n=120, holes=(30, 31), nan_at=()):
    """One weekly sensor series (dates as YYYYMMDD integers, as NOAA-style exports write them)."""
    dates = pd.date_range("1958-03-29", periods=n, freq="7D")
    v = 315 + np.sin(np.arange(n) / 8.0) + np.arange(n) * 0.01
    v[list(nan_at)] = np.nan
    keep = np.setdiff1d(np.arange(n), holes)
    return pd.DataFrame({"date": dates.strftime("%Y%m%d").astype(int)[keep], "co2": v[keep]})


def test_cli_one_column_series_forecasts_itself_and_gaps_option(tmp_path, capsys):
    csv = tmp_path / "co2.csv"
    weekly_readings().to_csv(csv, index=False)
    base = ["check", str(csv), "--time-col", "date", "--time-format", "%Y%m%d", "--timesteps", "8", "--target", "co2"]
    assert main(base) == 2  # two missing weeks: a hole, refused with the CLI option to pass
    out, err = capsys.readouterr()
    assert "is also the input" in out or "are also the input" in out
    assert "hole" in err and "--gaps split" in err and "gaps='split'" not in err
    assert main(base + ["--gaps", "split"]) == 0
    out = capsys.readouterr().out
    assert "features ['co2'], target ['co2']" in out
    # without --time-format, YYYYMMDD integers are numbers; the CLI says how to read them as dates
    main(["check", str(csv), "--time-col", "date", "--timesteps", "8", "--gaps", "accept"])
    assert "--time-format %Y%m%d" in capsys.readouterr().out


def test_cli_nan_advice_is_about_the_table_not_python(tmp_path, capsys):
    csv = tmp_path / "co2.csv"
    weekly_readings(holes=(), nan_at=(5, 6)).to_csv(csv, index=False)
    assert main(["check", str(csv), "--time-col", "date", "--time-format", "%Y%m%d", "--timesteps", "8",
                 "--target", "co2"]) == 1
    out = capsys.readouterr().out
    assert "NaN" in out and "in the table's columns" in out and "np.isfinite(X)" not in out


def test_library_warnings_are_said_as_cli_lines_with_option_names(tmp_path):
    # newcomer trial: the padding warning came out as a raw Python warning naming batch_size=
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": np.repeat(["a", "b"], [20, 30]), "t": np.r_[np.arange(20), np.arange(30)],
                          "x": rng.normal(size=50)})
    path = tmp_path / "small.csv"
    frame.to_csv(path, index=False)
    run = subprocess.run([sys.executable, "-m", "statebatch", "check", str(path), "--id-col", "id", "--time-col", "t",
                          "--timesteps", "5", "--batch-size", "16", "--stateful"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "warning: padding is" in run.stderr and "--batch-size 2 or less" in run.stderr
    assert "StatebatchWarning" not in run.stderr and "cli.py" not in run.stderr


def sales_table(tmp_path):
    """Daily sales of three stores with a price known in advance, a temperature, and each store's region."""
    rng = np.random.default_rng(3)
    parts = [pd.DataFrame({"store": f"S{k}", "day": np.arange(n), "sales": rng.normal(size=n).round(3),
                           "price": rng.normal(size=n).round(3), "temp": rng.normal(size=n).round(3),
                           "region": ["north", "south"][k % 2]}) for k, n in enumerate([20, 15, 18])]
    df = pd.concat(parts, ignore_index=True)
    csv = tmp_path / "sales.csv"
    df.to_csv(csv, index=False)
    return df, csv


def test_cli_feature_cols_chooses_the_input_columns_in_their_order(tmp_path, capsys):
    df, csv = sales_table(tmp_path)
    X = cli_windows(csv, "id_col", "store", "time_col", "day", "timesteps", 5, "feature_cols", "temp,sales")
    # by hand: each store's (temp, sales) rows in day order, windows of 5; price is left out
    expected = np.concatenate([np.stack([g[["temp", "sales"]].to_numpy()[i:i + 5] for i in range(len(g) - 4)])
                               for _, g in df.groupby("store", sort=False)])
    np.testing.assert_array_equal(X, expected)
    rc = main(["check", str(csv), "--id-col", "store", "--time-col", "day", "--timesteps", "5", "--target", "sales",
               "--feature-cols", "sales,temp"])
    out = capsys.readouterr().out
    assert rc == 0 and "features ['sales', 'temp'], target ['sales']" in out and "features=2" in out


@pytest.mark.parametrize("option, value, kind, needle", [
    ("--feature-cols", "temp,sails", "ParameterError", "--feature-cols 'sails' is not a column"),
    ("--feature-cols", "region", "DTypeError", "--feature-cols 'region' is not numeric"),
    ("--feature-cols", "day", "ParameterError", "--feature-cols names 'day', which is the --time-col column"),
    ("--known-cols", "prize", "ParameterError", "--known-cols 'prize' is not a column"),
    ("--static-cols", "regio", "ParameterError", "--static-cols 'regio' is not a column"),
    ("--known-cols", "price", "ParameterError", "no --target was given"),
])
def test_cli_bad_column_options_are_one_statebatch_error_naming_the_columns(tmp_path, capsys, option, value, kind,
                                                                           needle):
    _, csv = sales_table(tmp_path)
    rc = main(["check", str(csv), "--id-col", "store", "--time-col", "day", "--timesteps", "5", option, value])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"error: {kind}: ") and needle in err, err
    assert "Traceback" not in err and "please report" not in err
    if "is not a column" in needle:  # the columns there are, to pick from
        assert "['store', 'day', 'sales', 'price', 'temp', 'region']" in err


def test_cli_known_and_static_cols_build_the_forecasting_inputs(tmp_path, capsys):
    df, csv = sales_table(tmp_path)
    args = ["--id-col", "store", "--time-col", "day", "--timesteps", "5", "--target", "sales", "--feature-cols",
            "sales,temp", "--known-cols", "price", "--static-cols", "region"]
    assert main(["check", str(csv)] + args) == 0
    out = capsys.readouterr().out
    # windows of 5 inputs and the next step as target: n - 5 windows per store, 15 + 10 + 13; past holds sales, temp and price,
    # future the price of the target step, static one code per window (north/south)
    assert "known ['price'], static ['region']" in out
    assert "forecasting inputs: past (38, 5, 3), future (38, 1, 1), static (38, 1), y (38, 1, 1)" in out
    X = cli_windows(csv, "id_col", "store", "time_col", "day", "timesteps", 5, "target", "sales", "feature_cols",
                    "sales,temp", "known_cols", "price", "static_cols", "region")
    first = df[df.store == "S0"][["sales", "temp", "price"]].to_numpy()[:5]
    np.testing.assert_array_equal(X[0], first)  # past of the first window, by hand
    # lanes: past, the known values of each step's target step, static codes; 2 lanes of 5 steps per batch
    assert main(["check", str(csv), "--stateful", "--batch-size", "2"] + args) == 0
    out = capsys.readouterr().out
    n = int(re.search(r"Arranged\(X=\((\d+),", out).group(1))
    assert f"forecasting inputs: past ({n}, 5, 2), future ({n}, 5, 1), static ({n}, 1), y ({n}, 5, 1), " \
           f"sample_weight ({n}, 5)" in out
