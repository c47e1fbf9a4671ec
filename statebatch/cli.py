"""Command line: ``statebatch explain`` and ``statebatch check``.

    statebatch explain --shape 1000,20,1 --batch-size 200 --stateful
    statebatch check data.npz --batch-size 32 --stateful
    statebatch check series.csv --timesteps 20
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataValueError, DTypeError, ParameterError, StatebatchError


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


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Load X (and y, sample_weight) from .npy, .npz, .csv or .parquet.

    ``.npz`` keys ``X``/``x``, ``y`` and ``sample_weight`` are used (else the first array is X);
    ``.csv``/``.parquet`` are raw series tables ``(steps, features)``.
    """
    path = Path(path)
    if not path.exists():
        raise ParameterError(f"file {str(path)!r} does not exist.", "pass the path of a .npy/.npz/.csv/.parquet file.")
    if path.is_dir():
        raise ParameterError(f"{str(path)!r} is a directory.", "pass the path of one .npy/.npz/.csv/.parquet file.")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz", ".csv", ".parquet", ".pq"):
        raise ParameterError(f"unsupported file type {suffix!r}.", "use .npy, .npz, .csv or .parquet.")
    try:
        return _read(path, suffix)
    except StatebatchError:
        raise
    except Exception as exc:  # numpy, pandas, pyarrow and the OS each raise their own errors for bad files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "allow_pickle" in reason or "Object arrays" in reason:
            raise DTypeError(f"{path} holds Python objects (a pickled array), which statebatch does not load.",
                             "save numeric arrays: np.save(path, X.astype('float32')).") from None
        raise DataValueError(f"{path} cannot be read as {suffix[1:]} ({type(exc).__name__}: {reason}).",
                             "check that the file is complete and of the type its name says.") from None


def _read(path: Path, suffix: str) -> dict[str, Any]:
    if suffix == ".npy":
        with open(path, "rb") as f:
            if f.read(6) != b"\x93NUMPY":
                raise DataValueError(f"{path} is not a .npy file (it does not start with numpy's magic bytes; "
                                     "compressed, or another format?).", "save it with np.save(path, X).")
        return {"X": np.load(path, allow_pickle=False)}
    if suffix == ".npz":
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
    import pandas as pd

    df = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    if df.empty:
        raise DataValueError(f"{path} holds no rows.", "pass a table with one row per time step.")
    return {"table": df}


def _cmd_explain(args) -> int:
    from .explain import explain

    print(explain(args.shape, batch_size=args.batch_size, stateful=args.stateful))
    return 0


def _cmd_check(args) -> int:
    from .validate import validate

    arrays = load_arrays(args.file)
    if "table" in arrays:
        from .windows import make_windows

        df = arrays["table"]
        numeric = df.select_dtypes("number")
        dropped = [c for c in df.columns if c not in numeric.columns]
        if dropped:
            print(f"note: non-numeric columns ignored as features: {dropped}")
        if numeric.shape[1] == 0:
            raise DTypeError(f"{args.file} has no numeric columns (columns: {list(df.columns)[:10]}).",
                             "convert the feature columns to numbers (dates go in the row order, not the features).")
        print(f"table {args.file}: {len(df)} steps x {numeric.shape[1]} numeric feature(s)")
        if args.timesteps is None:
            X = numeric.to_numpy()[None]  # the whole table as one sample, for value checks
            rep = validate(X, raise_errors=False, emit_warnings=False)
            rep.warnings.append("pass --timesteps T to check the windows a model would see.")
        else:
            # allow_nan: the report below lists NaN/inf with the rest, rather than stopping at them
            w = make_windows(numeric, args.timesteps, stride=args.stride, allow_nan=True)
            rep = validate(w.X, batch_size=args.batch_size, stateful=args.stateful,
                           shuffle=False if args.stateful else None, raise_errors=False, emit_warnings=False)
    else:
        rep = validate(arrays["X"], arrays.get("y"), sample_weight=arrays.get("sample_weight"),
                       batch_size=args.batch_size, stateful=args.stateful,
                       shuffle=False if args.stateful else None, timesteps=args.timesteps,
                       raise_errors=False, emit_warnings=False)
    print(rep)
    return 0 if rep.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="statebatch", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("explain", help="explain batches, state resets and lanes for a shape")
    p.add_argument("--shape", type=_shape, required=True, help="samples,timesteps,features e.g. 1000,20,1")
    p.add_argument("--batch-size", type=_positive, default=32)
    p.add_argument("--stateful", action="store_true")
    p.set_defaults(func=_cmd_explain)
    c = sub.add_parser("check", help="validate a .npy/.npz/.csv/.parquet file")
    c.add_argument("file")
    c.add_argument("--batch-size", type=_positive, default=None)
    c.add_argument("--stateful", action="store_true")
    c.add_argument("--timesteps", type=_positive, default=None, help="window a table / expected timesteps")
    c.add_argument("--stride", type=_positive, default=1)
    c.set_defaults(func=_cmd_check)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except StatebatchError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the CLI answers in one line whatever went wrong
        print(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} (please report this)",
              file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
