"""Command line: ``statebatch explain`` and ``statebatch check``.

    statebatch explain --shape 1000,20,1 --batch-size 200 --stateful
    statebatch explain data.npz --batch-size 8 --stateful        # reads the data: what layout is it?
    statebatch check data.npz --batch-size 32 --stateful
    statebatch check series.csv --timesteps 20
    statebatch check long.csv --id-col id --time-col t --target y --timesteps 20 --batch-size 8 --stateful
    statebatch check stocks.csv --id-col symbol --time-col date --time-format %d/%m/%Y --timesteps 12

A table (.csv/.parquet) is raw series, one row per step: a long table holds many series, kept apart
by ``--id-col`` and ordered by ``--time-col`` (numbers, datetimes, or date/time text: ISO dates and
other common forms are recognised, ``--time-format`` names any other; ambiguous day/month text is
refused). The windows or lanes a model would see are built from
it (``make_windows``, or ``arrange_stateful`` with ``--stateful``) and the command says what it built.
"""

from __future__ import annotations

import argparse
import sys
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ._cli_time import parse_time_column
from .errors import DataValueError, DTypeError, ParameterError, StatebatchError, StatebatchWarning


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _shape(text: str) -> tuple:
    try:
        return tuple(None if p.strip().lower() in ("none", "?") else int(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shape must look like 1000,20,1 (got {text!r})") from None


def load_arrays(path: str | Path) -> dict[str, Any]:
    """Load X (and y, sample_weight) from .npz, or the data of any registered file suffix.

    ``.npz`` keys ``X``/``x``, ``y`` and ``sample_weight`` are used (else the first array is X).
    Every other suffix is read by the input kind registered for it (see
    :func:`statebatch.register_input`): ``.npy`` gives ``{"X": array}``; ``.csv``/``.parquet``
    give ``{"table": frame}`` (raw series, one row per step); a user's kind gives ``{"data": value}``.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.npy"
    >>> np.save(path, np.zeros((4, 3, 1)))
    >>> load_arrays(path)["X"].shape
    (4, 3, 1)
    """
    from .sources.registry import input_suffixes, reader_for_suffix

    path = Path(path)
    kinds = "/".join([".npz"] + input_suffixes())
    if not path.exists():
        raise ParameterError(f"file {str(path)!r} does not exist.", f"pass the path of a {kinds} file.")
    if path.is_dir():
        raise ParameterError(f"{str(path)!r} is a directory.", f"pass the path of one {kinds} file.")
    suffix = path.suffix.lower()
    reader = reader_for_suffix(suffix)
    if suffix != ".npz" and reader is None:
        raise ParameterError(f"unsupported file type {suffix!r}.",
                             f"use {', '.join(kinds.split('/'))}, or register a reader for it with "
                             "statebatch.register_input(..., suffixes=[...], read_file=...).")
    try:
        return _read_npz(path) if reader is None else _as_loaded(reader(path))
    except StatebatchError:
        raise
    except Exception as exc:  # numpy, pandas, pyarrow and the OS each raise their own errors for bad files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "allow_pickle" in reason or "Object arrays" in reason:
            raise DTypeError(f"{path} holds Python objects (a pickled array), which statebatch does not load.",
                             "save numeric arrays: np.save(path, X.astype('float32')).") from None
        raise DataValueError(f"{path} cannot be read as {suffix[1:]} ({type(exc).__name__}: {reason}).",
                             "check that the file is complete and of the type its name says.") from None


def _as_loaded(data: Any) -> dict[str, Any]:
    """What a registered reader gave: X (an array), a table (a pandas frame), or data of another kind."""
    if isinstance(data, np.ndarray):
        return {"X": data}
    from .sources.registry import type_is

    if type_is(data, "pandas", "DataFrame"):
        return {"table": data}
    return {"data": data}


def _read_npz(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.keys())
        xk = next((k for k in ("X", "x", "X_train", "x_train") if k in keys), keys[0] if keys else None)
        if xk is None:
            raise ParameterError(f"{path} holds no arrays.", "save X with np.savez(path, X=X, y=y).")
        out = {"X": z[xk]}
        for k in ("y", "Y", "y_train", "sample_weight"):
            if k in keys:
                out["sample_weight" if k == "sample_weight" else "y"] = z[k]
        return out


_ID_NAMES = ("id", "series", "series_id", "seriesid", "key", "unit", "unit_id", "group", "station", "ticker",
             "sensor", "item", "item_id", "store", "sku", "entity")
_TIME_NAMES = ("t", "time", "timestamp", "date", "datetime", "ds", "step", "time_idx", "timeidx")


def _column(df, name: str | None, option: str) -> str | None:
    if name is None or name.lower() == "none":
        return None
    if name not in df.columns:
        raise ParameterError(f"{option} {name!r} is not a column of the table (columns: {list(df.columns)[:12]}).",
                             f"pass {option} with one of the table's column names.")
    return name


def _names(df: Any, text: str | None, option: str) -> list[Any] | None:
    """The columns a comma-separated option names (None when not given), each checked against the table."""
    if text is None:
        return None
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise ParameterError(f"{option} {text!r} names no column.", f"pass {option} col1,col2 (the table's column names).")
    for name in names:
        if name not in df.columns:
            raise ParameterError(f"{option} {name!r} is not a column of the table (columns: "
                                 f"{list(df.columns)[:12]}).", f"pass {option} with the table's column names.")
    return names


def _covariate_columns(df: Any, args: Any) -> tuple[list[Any] | None, list[Any] | None]:
    """--known-cols and --static-cols, checked; they build forecasting inputs, which need --target."""
    known = _names(df, getattr(args, "known_cols", None), "--known-cols")
    static = _names(df, getattr(args, "static_cols", None), "--static-cols")
    if (known or static) and not args.target:
        given = " and ".join(o for o, v in (("--known-cols", known), ("--static-cols", static)) if v)
        raise ParameterError(f"{given} build forecasting inputs (past, future, static), whose targets are the "
                             "next values of target columns, and no --target was given.",
                             f"pass --target with the column(s) to forecast, or leave {given} out.")
    return known, static


def _table_columns(df: Any, args: Any) -> tuple[str | None, str | None, list[Any] | None, list[Any]]:
    """id, time, target and feature columns of a table; an unnamed but obvious id or time column is refused
    with a message rather than read as a feature (which would window across series or feed clock values)."""
    id_col = _column(df, args.id_col, "--id-col")
    time_col = _column(df, args.time_col, "--time-col")
    targets = _names(df, args.target, "--target")
    chosen = _names(df, getattr(args, "feature_cols", None), "--feature-cols")
    known, static = _covariate_columns(df, args)
    lower = {str(c).lower(): c for c in df.columns}
    if args.id_col is None:
        guess = next((lower[n] for n in _ID_NAMES if n in lower), None)
        if guess is None:  # unique_id, customer_id, seriesId ...
            guess = next((c for c in df.columns if str(c).lower().endswith("id") and 1 < df[c].nunique() < len(df)),
                         None)
        if guess is None:  # a text column with repeated values is a series key too
            guess = next((c for c in df.columns if df[c].dtype == object and 1 < df[c].nunique() < len(df)
                          and c not in (static or [])), None)
        if guess is not None:
            raise ParameterError(
                f"the table has a column {guess!r} that looks like a series id ({df[guess].nunique()} distinct "
                "values); read as a feature it would mix series into one.",
                f"pass --id-col {guess} to keep the series apart (or --id-col none if the table is one series).")
    if args.time_col is None:
        guess = next((lower[n] for n in _TIME_NAMES if n in lower), None)
        if guess is not None:
            raise ParameterError(
                f"the table has a column {guess!r} that looks like a time index; read as a feature the model "
                "would see clock values.",
                f"pass --time-col {guess} to order the steps by it (or --time-col none to keep it as a feature).")
    used = {c for c in (id_col, time_col) if c is not None} | set(targets or []) | set(known or []) | set(static or [])
    numeric = df.select_dtypes("number")
    if chosen is not None:
        return id_col, time_col, targets, _chosen_features(df, chosen, id_col, time_col, numeric)
    features = [c for c in numeric.columns if c not in used]
    ignored = [c for c in df.columns if c not in used and c not in features]
    if ignored:
        print(f"note: non-numeric columns ignored as features: {ignored}")
    if not features and targets and all(c in numeric.columns for c in targets):
        # one numeric column named as the target: the series forecasts itself (its next value)
        print(f"note: no other numeric column, so the target column(s) {targets} are also the input: each step's "
              "target is the next value of the series")
        features = list(targets)
    if not features:
        raise DTypeError(f"the table has no numeric feature columns (columns: {list(df.columns)[:12]}).",
                         "convert the feature columns to numbers (dates go in --time-col, not the features).")
    return id_col, time_col, targets, features


def _chosen_features(df: Any, chosen: list[Any], id_col: Any, time_col: Any, numeric: Any) -> list[Any]:
    """--feature-cols as given (the target columns may be among them: the series' own past), each numeric and
    none of them the id or time column."""
    for c in chosen:
        if c in (id_col, time_col):
            option = "--id-col" if c == id_col else "--time-col"
            raise ParameterError(f"--feature-cols names {c!r}, which is the {option} column.",
                                 f"leave {c!r} out of --feature-cols.")
        if c not in numeric.columns:
            raise DTypeError(f"--feature-cols {c!r} is not numeric (dtype {df[c].dtype}); the model reads numbers.",
                             f"convert {c!r} to numbers, or leave it out of --feature-cols (numeric columns: "
                             f"{list(numeric.columns)[:12]}).")
    return chosen


def _from_table(df, args, stateful: bool):
    """Build what a model would see from a table, and say what was built. Returns (X, y, weights, batch_size)
    or None when no --timesteps was given (then the table itself is checked as one sample)."""
    id_col, time_col, targets, features = _table_columns(df, args)
    if time_col is not None:
        df, fmt = parse_time_column(df, time_col, args.time_format)
        if fmt is not None:
            print(f"time column {time_col!r}: text read as dates/times with format {fmt!r}"
                  + ("" if args.time_format else " (pass --time-format to choose another)"))
    elif args.time_format is not None:
        raise ParameterError("--time-format applies to the --time-col column, and no --time-col was given.",
                             "pass --time-col with the column that holds the time stamps, or leave --time-format out.")
    n_series = int(df[id_col].nunique()) if id_col else 1
    where = (f"{n_series} series (by {id_col!r})" if id_col else "1 series") + (
        f", ordered by {time_col!r}" if time_col else ", in file order")
    known, static = _covariate_columns(df, args)
    print(f"table {args.file}: {len(df)} rows, {where}; features {features}"
          + (f", target {targets}" if targets else "") + (f", known {known}" if known else "")
          + (f", static {static}" if static else ""))
    if args.timesteps is None:
        return None
    common = dict(id_col=id_col, time_col=time_col, feature_cols=features, target_cols=targets, dtype=args.dtype,
                  gaps=args.gaps)
    common.update({k: v for k, v in (("known_cols", known), ("static_cols", static)) if v})
    return _build(df, args, stateful, common, n_series, bool(targets))


def _none(name: str | None) -> str | None:
    return None if name is None or name.lower() == "none" else name


def _from_data(data: Any, args: Any, stateful: bool) -> tuple | None:
    """Data of a registered input kind (a user's file format): read by its registration with the options
    given (no column guessing: the kind knows its own layout). Same return as :func:`_from_table`."""
    from .sources.registry import find_input
    from .sources.series import as_series

    if args.time_format is not None:
        raise ParameterError("--time-format applies to a .csv/.parquet table's --time-col.", "leave --time-format out.")
    for option in ("--feature-cols", "--known-cols", "--static-cols"):
        if getattr(args, option[2:].replace("-", "_"), None) is not None:
            raise ParameterError(f"{option} applies to a .csv/.parquet table: the input kind of {args.file} reads its "
                                 "own columns.", f"leave {option} out, or pick the columns in that kind's to_series.")
    targets = [c.strip() for c in args.target.split(",")] if args.target else None
    kind = find_input(data)
    name = kind.name if kind else type(data).__name__
    try:
        ss = as_series(data, id_col=_none(args.id_col), time_col=_none(args.time_col), target_cols=targets,
                       dtype=args.dtype, gaps=args.gaps, what=str(args.file))
    except ParameterError as exc:  # the kind did not apply a column option: said with the CLI's option names
        if not exc.problem.startswith(("target_cols=", "id_col/time_col/feature_cols/target_cols were given")):
            raise
        named = [("--target", args.target)] if exc.problem.startswith("target_cols=") else [
            ("--id-col", args.id_col), ("--time-col", args.time_col), ("--target", args.target)]
        given = [f"{o} {v}" for o, v in named if _none(v) is not None]
        raise ParameterError(f"{' '.join(given)}: {exc.problem.split(', but ')[-1]}",
                             f"drop {' and '.join(g.split(' ')[0] for g in given)}, or make the to_series registered "
                             f"as {name!r} read options.id_col/time_col/target_cols.") from None
    _warn_unchecked_columns(args, name, ss)
    print(f"{name} {args.file}: {int(ss.offsets[-1])} rows, {ss.n_series} series; "
          f"{ss.n_features} feature(s)" + (f" {ss.feature_names}" if ss.feature_names else "")
          + (f", target {ss.target_names}" if ss.target_names else ""))
    args.series = ss
    if args.timesteps is None:
        return None
    return _build(ss, args, stateful, {}, ss.n_series, ss.targets is not None)


def _warn_unchecked_columns(args: Any, name: str, ss: Any) -> None:
    """A registered kind's to_series decides the series itself: whether it split them by --id-col (or ordered
    them by --time-col) cannot be seen in what it returns, so the option is named with the series it gave."""
    for option, value in (("--id-col", args.id_col), ("--time-col", args.time_col)):
        if _none(value) is not None:
            warnings.warn(f"{option} {value}: the input kind {name!r} reads {args.file} itself and gave "
                          f"{ss.n_series} series; statebatch cannot check that its to_series used {option} (handed to "
                          f"it as options.{option[2:].replace('-', '_')}). Fix: if the series are wrong, make that "
                          f"to_series read options.{option[2:].replace('-', '_')}, or drop {option}.",
                          StatebatchWarning, stacklevel=2)


def _lenient(fn: Any) -> dict[str, Any]:
    """NaN and inf pass the builders, so that validate reports them with the rest (allow_inf where the
    builder takes it)."""
    import inspect

    return {"allow_nan": True, **({"allow_inf": True} if "allow_inf" in inspect.signature(fn).parameters else {})}


def _build(data: Any, args: Any, stateful: bool, common: dict, n_series: int, has_targets: bool) -> tuple:
    """The windows or lanes a model would see, built with statebatch, and a line saying what was built.
    Returns (X, y, weights, batch_size)."""
    # the CLI builds X in the dtype Keras computes in (--dtype), so no advice about X's dtype is due
    if stateful:
        from .results.stateful import arrange_stateful

        if args.stride != 1:
            raise ParameterError(f"--stride {args.stride} with --stateful: lanes are cut into consecutive chunks "
                                 "that never overlap or skip steps, so a stride does not apply.",
                                 "leave --stride out for a stateful model (or drop --stateful for strided windows).")
        if args.batch_size is None:
            raise ParameterError("--stateful needs --batch-size: the lanes are built for the model's fixed batch size.",
                                 "pass --batch-size B (the batch size the stateful model is built with).")
        # target columns: the value one step later, per timestep (arrange_stateful's "next")
        a = arrange_stateful(data, args.timesteps, args.batch_size, targets="next" if has_targets else None,
                             **common, **_lenient(arrange_stateful))
        args.built = a  # explain describes the arrangement itself (lanes, resets, padding), not a bare X
        X, y, sw, inputs = _model_arrays(a.arrays())
        # repr(a) is the arrangement's own summary, so the padding figure is the one Python shows for it
        print(f"built {a.n_series} series -> lanes with statebatch.arrange_stateful(timesteps={args.timesteps}, "
              f"batch_size={args.batch_size})" + (" (targets='next': each target column one step later)"
                                                  if has_targets else "") + f": {a!r}; this is statebatch's "
              "arrangement of your table, not data you made" + inputs)
        return X, y, sw, args.batch_size
    from .results.windows import make_windows

    # forecasting inputs take NaN through missing=, not allow_nan: their builder refuses NaN/inf itself
    lenient = {} if "known_cols" in common or "static_cols" in common else _lenient(make_windows)
    w = make_windows(data, args.timesteps, stride=args.stride, **common, **lenient)
    args.built = w
    X, y, _, inputs = _model_arrays(w.arrays())
    print(f"built {len(X)} windows of {args.timesteps} steps (stride {args.stride}) from "
          f"{n_series} series with statebatch.make_windows; windows never cross a series boundary" + inputs)
    return X, y, None, args.batch_size


def _model_arrays(got: Any) -> tuple[Any, Any, Any, str]:
    """X, y and sample weights of what was built, and the words for its inputs. With --known-cols/--static-cols
    every batch is a mapping of inputs (past, future, static); ``past`` is checked as X (the known and static
    values are checked finite where they are built)."""
    if not isinstance(got, dict):
        return got[0], (got[1] if len(got) > 1 else None), (got[2] if len(got) > 2 else None), ""
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in got.items())
    return got["past"], got.get("y"), got.get("sample_weight"), f"; forecasting inputs: {shapes}"


def _built_from_file(arrays: dict[str, Any], args: Any) -> tuple | None:
    """A table or a registered kind's data, built into windows or lanes (None without --timesteps)."""
    if "table" in arrays:
        return _from_table(arrays["table"], args, args.stateful)
    return _from_data(arrays["data"], args, args.stateful)


def _cmd_explain(args) -> int:
    from .checking.explain import explain

    if (args.shape is None) == (args.file is None):
        raise ParameterError("explain needs either --shape or a data file, not both and not neither.",
                             "pass --shape 1000,20,1, or a .npy/.npz/.csv/.parquet file.")
    if args.shape is not None:
        print(explain(args.shape, batch_size=args.batch_size, stateful=args.stateful))
        return 0
    arrays = load_arrays(args.file)
    if "X" not in arrays:
        built = _built_from_file(arrays, args)
        if built is None:
            raise ParameterError("explaining a table needs --timesteps: the windows or lanes are built from it.",
                                 "pass --timesteps T (and --batch-size B).")
        if args.stateful:  # the lanes statebatch built: their own explanation, padding figure included
            print(explain(args.built))
            return 0
        X = built[0]
    else:
        X = arrays["X"]
    print(explain(X, batch_size=args.batch_size, stateful=args.stateful))
    return 0


def _cmd_check(args) -> int:
    from .checking.validate import validate

    arrays = load_arrays(args.file)
    if "X" not in arrays:
        built = _built_from_file(arrays, args)
        if built is None:
            if "table" in arrays:
                id_col, time_col, targets, features = _table_columns(arrays["table"], args)
                X = arrays["table"][features].to_numpy()[None]  # the whole table as one sample, for value checks
            else:
                X = args.series.source.read(0, len(args.series.source))[None]
            rep = validate(X, raise_errors=False, emit_warnings=False)
            rep.warnings.append("pass --timesteps T to check the windows a model would see.")
        else:
            X, y, sw, bs = built
            rep = validate(X, y, sample_weight=sw, batch_size=bs, stateful=args.stateful,
                           shuffle=False if args.stateful else None, raise_errors=False, emit_warnings=False)
    else:
        rep = validate(arrays["X"], arrays.get("y"), sample_weight=arrays.get("sample_weight"),
                       batch_size=args.batch_size, stateful=args.stateful,
                       shuffle=False if args.stateful else None, timesteps=args.timesteps,
                       raise_errors=False, emit_warnings=False)
    # advice about an X the CLI built from a table is said in CLI terms (the user cannot run Python on it)
    print(_cli_fix(_cli_advice(str(rep))) if "X" not in arrays else rep)
    if rep.layout is not None and rep.ok:
        how = "" if rep.layout.exact else " (a statistical reading, not proof)"
        print(f"  layout: {rep.layout.kind}{how}: {rep.layout.evidence}")
    return 0 if rep.ok else 1


# Library fixes that name a keyword argument the CLI has as an option: said as the option
_CLI_WORDS = (("gaps='split'", "--gaps split"), ("gaps='accept'", "--gaps accept"), ("gaps=\"split\"", "--gaps split"),
              ("pass time_col=", "pass --time-col "), ("dtype='float32'", "--dtype float32"))


def _cli_fix(text: str) -> str:
    for a, b in _CLI_WORDS:
        text = text.replace(a, b)
    # "batch_size=4" in a library fix is the CLI's --batch-size 4
    return re.sub(r"\bbatch_size=(\d+)", r"--batch-size \1", text)


def _cli_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library warning, as the CLI says it: one line, no source location, options for keywords."""
    print(f"warning: {_cli_fix(str(message))}", file=sys.stderr if file is None else file)


def _cli_advice(text: str) -> str:
    """Advice about an X the CLI built, in CLI options instead of the Python a script would write."""
    text = text.replace("Pass X.astype('float32')", "Pass --dtype float32")
    return text.replace(", or drop those samples: keep = np.isfinite(X).all(axis=(1, 2)).",
                        " in the table's columns.")


def _dtype(text: str) -> str:
    if text not in ("float16", "float32", "float64"):
        raise argparse.ArgumentTypeError(f"expected float16, float32 or float64, got {text!r}")
    return text


def _table_options(p) -> None:
    p.add_argument("--id-col", default=None, help="table: the column that names each series ('none': one series); "
                                                    "a registered input kind gets it (and --time-col) as options.id_col "
                                                    "with a warning, as its use cannot be checked")
    p.add_argument("--time-col", default=None, help="table: the column that orders the steps of a series ('none': "
                                                      "file order)")
    p.add_argument("--time-format", default=None,
                   help="table: strftime format of a text --time-col, e.g. '%%d/%%m/%%Y' (default: ISO dates and "
                        "other common forms are recognised)")
    p.add_argument("--gaps", choices=("error", "split", "accept"), default="error",
                   help="table: holes in the time stamps: refuse (default), split the series at them, or accept them")
    p.add_argument("--dtype", type=_dtype, default="float32",
                   help="table: dtype of the windows or lanes built (default float32, what Keras computes in)")
    p.add_argument("--target", default=None, help="table: target column(s), comma-separated (not used as "
                   "features unless --feature-cols names them); a registered input kind must return targets for it, "
                   "else it is refused")
    p.add_argument("--feature-cols", default=None, help="table: the input columns, comma-separated (feature_cols=; "
                   "default: every numeric column that is no id, time, target or covariate column)")
    p.add_argument("--known-cols", default=None, help="table: columns known in advance at every step (known_cols=); "
                   "with --target, each batch becomes forecasting inputs past/future/static")
    p.add_argument("--static-cols", default=None, help="table: columns with one value per series (static_cols=); "
                   "with --target, as --known-cols")
    p.add_argument("--timesteps", type=_positive, default=None, help="window a table / expected timesteps")
    p.add_argument("--stride", type=_positive, default=1, help="table, stateless: steps between windows")


def main(argv: list[str] | None = None) -> int:
    """The ``statebatch`` command: ``explain`` or ``check``; returns the exit status (0 fine, 1 the check
    found problems, 2 a statebatch error, 3 an unexpected one).

    Examples
    --------
    >>> main(["explain", "--shape", "8,4,1", "--batch-size", "4", "--stateful"])  # doctest: +ELLIPSIS
    statebatch explain: X (8, 4, 1), batch_size=4, stateful=True
    ...
    0
    """
    parser = argparse.ArgumentParser(prog="statebatch", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("explain", help="explain batches, state resets and lanes for a shape")
    p.add_argument("file", nargs="?", default=None, help="a .npy/.npz/.csv/.parquet file to read (instead of --shape)")
    p.add_argument("--shape", type=_shape, default=None, help="samples,timesteps,features e.g. 1000,20,1")
    p.add_argument("--batch-size", type=_positive, default=32)
    p.add_argument("--stateful", action="store_true")
    _table_options(p)
    p.set_defaults(func=_cmd_explain)
    c = sub.add_parser("check", help="validate a .npy/.npz/.csv/.parquet file")
    c.add_argument("file")
    c.add_argument("--batch-size", type=_positive, default=None)
    c.add_argument("--stateful", action="store_true")
    _table_options(c)
    c.set_defaults(func=_cmd_check)
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default", StatebatchWarning)
            warnings.showwarning = _cli_warning
            return args.func(args)
    except StatebatchError as exc:
        print(f"error: {type(exc).__name__}: {_cli_fix(str(exc))}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the CLI answers in one line whatever went wrong
        print(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} (please report this)",
              file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
