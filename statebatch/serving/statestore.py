"""A state store keyed by series id: serve a trained stateful Keras model one new step at a time.

The anchor is NVIDIA Triton's sequence batcher (correlation ids mapped to batch slots, state kept
per sequence, start/end controls, idle timeout), done in-process with numpy state:

- every series id owns one *row* of each state array (``(capacity, *state_shape)``);
- :meth:`StateStore.step` gathers the rows of whatever series arrive together, runs the model once
  for all of them (:func:`statebatch.inference.inference_model`: free batch axis, states in and out),
  and scatters the new states back; other series are untouched;
- :meth:`StateStore.warm` starts series from zero state and runs each one's history exactly: rows of
  different lengths share a call with a per-row step mask (a masked step leaves the state as it is),
  so no padded step ever advances a state;
- :meth:`StateStore.forecast` feeds a next-value model its own predictions ``horizon`` times on copies
  of the states (the store is unchanged unless ``advance=True``);
- :meth:`reset`, :meth:`drop`, :meth:`evict_idle` (Triton's idle timeout), :meth:`save` and
  :meth:`load` (refuses a file written for another model, or one whose contents are not whole).

What saving guarantees (tested with real processes killed by SIGKILL and with concurrent writers):

- *crash*: a save writes a temporary file of its own (``.<name>.<pid>.<random>.tmp``, unique per
  save, so threads never share one), ``fsync``s it and moves it into place with ``os.replace``; a
  process killed at any point leaves either the previous file or the new one, whole. A temporary
  file left by a writer that died is removed by the next save or load of that path (its pid is gone);
- *concurrency*: saves to one path, from threads or processes, take an advisory lock
  (``fcntl.flock`` on a sidecar ``.<name>.lock``, removed after each save) and so run one at a
  time; the file is always one complete save, the *last* one (last writer wins: saves are not
  merged, a series only the earlier writer held is not in the file). Local filesystems only: the
  lock and the dead-writer test (by pid) mean nothing across machines sharing a network disk.

Keras is imported by :mod:`statebatch.inference`, which this module needs; the file-writing helpers
need only numpy (a saving subprocess in the tests uses them without importing Keras).
"""

from __future__ import annotations

import collections.abc as abc
import contextlib
import hashlib
import io
import json
import os
import time
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from .._args import check_bool, check_int, check_path, check_real, check_size, plural
from ..errors import (DataValueError, DTypeError, ModelMismatchError, ParameterError, ShapeError,
                     StatebatchWarning, StoreError, UnknownSeriesError, UnsupportedModelError)

try:  # POSIX advisory locks; elsewhere saves are not serialised between processes (documented)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

if TYPE_CHECKING:
    from .inference import StateSpec

__all__ = ["StateStore"]

_FORMAT = "statebatch.StateStore/2"
# Version 1 identified states by layer paths, i.e. Keras' auto-generated names ("lstm_7"): a model
# rebuilt in a fresh process gets other names. Such files still load (with a warning) when everything
# that is not a name matches: the states' classes, shapes and dtypes, the sizes, the weights.
_OLD_FORMAT = "statebatch.StateStore/1"
# Config keys that describe what a layer computes (never its name): part of the model signature.
_STRUCTURAL = ("units", "activation", "recurrent_activation", "use_bias", "unit_forget_bias", "reset_after",
               "return_sequences", "return_state", "go_backwards", "stateful", "unroll", "merge_mode", "filters",
               "kernel_size", "strides", "padding", "dilation_rate", "rate", "axis", "epsilon", "target_shape",
               "dims", "output_dim", "input_dim", "pool_size", "data_format", "mask_value", "negative_slope",
               "max_value", "threshold", "center", "scale", "output_mode", "n")


def _bucket(n: int) -> int:
    """Rows (or steps) padded up to a few shapes, so compiled backends (JAX, tf.function) trace once per
    bucket, not once per size: powers of two up to 1024, then multiples of 1024. Padded rows run on
    zero state and are thrown away; they are never scattered back."""
    if n <= 1024:
        return 1 << max(0, (n - 1).bit_length())
    return -(-n // 1024) * 1024


def _check_id(sid: Any) -> Any:
    # bool is refused although it is an int: True == 1 would silently address series 1.
    if isinstance(sid, (bool, np.bool_)) or not isinstance(sid, (str, int, np.integer)):
        raise ParameterError(f"series id {sid!r} ({type(sid).__name__}) is not a str or int.",
                             "use str or int series ids (they are saved with the states).")
    if isinstance(sid, np.integer):
        return int(sid)
    return str(sid) if isinstance(sid, str) and type(sid) is not str else sid  # np.str_ -> str (saved as JSON)


def check_ids(ids: Any) -> list:
    """``ids`` as a list of distinct str/int series ids, read exactly once.

    A generator or iterator is consumed here and only here, so every later use sees the same ids.
    Unordered collections (``set``, ``frozenset``) are refused: values are paired with ids by
    position, and a set's order is arbitrary. A ``dict``'s keys view keeps insertion order and is
    accepted; a mapping itself is refused (ids or values?).
    """
    if isinstance(ids, (str, bytes, int, np.integer, np.str_)) and not isinstance(ids, (bool, np.bool_)):
        shown = ids.decode(errors="replace") if isinstance(ids, bytes) else ids
        raise ParameterError(f"ids must be a list of series ids, got the single id {ids!r}.", f"pass [{shown!r}].")
    if isinstance(ids, abc.Mapping):
        raise ParameterError(f"ids is a mapping ({type(ids).__name__}): it is unclear whether its keys are the ids.",
                             "pass list(mapping) for its keys (insertion order) and the values in that order.")
    if isinstance(ids, abc.Set) and not isinstance(ids, abc.KeysView):
        raise ParameterError(
            f"ids is a {type(ids).__name__}, whose order is arbitrary: values are paired with ids by position, so "
            "each series could receive another series' values.",
            "pass a list (e.g. sorted(ids)) and the values in the same order.")
    if isinstance(ids, np.ndarray) and ids.ndim != 1:
        raise ParameterError(f"ids has shape {ids.shape}; a 1-D list of ids was expected.", "pass a flat list of ids.")
    try:
        out = list(ids)
    except TypeError:
        raise ParameterError(f"ids must be a list of series ids, got {type(ids).__name__}.",
                             "pass a list (or array) of str/int ids.") from None
    out = [_check_id(i) for i in out]
    if len(set(out)) != len(out):
        seen, dup = set(), []
        for i in out:
            if i in seen and i not in dup:
                dup.append(i)
            seen.add(i)
        raise ParameterError(f"series ids repeat in one call: {dup[:5]}.",
                             "pass each series once per call (step twice for two steps, or pass (n, k, F) values).")
    return out


# ---------------------------------------------------------------- atomic, locked file writes (numpy only)
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> list[str]:
    """Remove the temporary files ``.<name>.<pid>[.<random>].tmp`` of writers of ``path`` whose process is
    gone (killed while saving); returns their names. A live writer's file (its pid exists) is kept."""
    path = Path(path)
    prefix = f".{path.name}."
    try:
        entries = os.listdir(path.parent)
    except OSError:
        return []
    removed = []
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        pid = entry[len(prefix):-len(".tmp")].split(".")[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        try:
            os.unlink(path.parent / entry)
            removed.append(entry)
        except OSError:  # removed by someone else meanwhile, or not ours to remove
            pass
    return removed


@contextlib.contextmanager
def save_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold the advisory save lock of ``path``: ``fcntl.flock`` on the sidecar ``.<name>.lock``.

    The holder removes the sidecar before releasing it, so none is left behind; a waiter that then
    gets the lock on the removed file sees that its inode is no longer the path's and tries again
    (the usual lock-file protocol). ``flock`` locks belong to open file descriptions, so threads of
    one process exclude each other too.
    """
    if fcntl is None:  # pragma: no cover - no POSIX locks: documented last-writer-wins without ordering
        yield
        return
    lock = Path(path).with_name(f".{Path(path).name}.lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            mine = os.fstat(fd)
            try:
                now = os.stat(lock)
                current = (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)
            except FileNotFoundError:
                current = False
        except BaseException:
            os.close(fd)
            raise
        if current:
            break
        os.close(fd)
    try:
        yield
    finally:
        try:
            os.unlink(lock)
        except OSError:
            pass
        os.close(fd)


def write_atomic(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` whole or not at all, under the save lock.

    A temporary file unique to this save (pid and a random part: threads of one process never share
    one) is written and ``fsync``ed next to ``path``, then moved into place with ``os.replace``;
    the directory is ``fsync``ed so the rename survives a power cut. Raises ``OSError``.
    """
    path = Path(path)
    with save_lock(path):
        remove_stale_temps(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise
        try:
            dfd = os.open(path.parent, os.O_RDONLY)
        except OSError:  # pragma: no cover - directories that cannot be opened (not POSIX)
            return
        try:
            os.fsync(dfd)
        except OSError:  # pragma: no cover - some filesystems refuse fsync on a directory
            pass
        finally:
            os.close(dfd)


def _structure(layer: Any) -> list:
    """What ``layer``'s sub-layers compute, in order, without any name: ``[class, structural config,
    children]`` per layer; nested models are inlined (a model in a model computes what its layers do)
    and input layers skipped."""
    out = []
    flatten = getattr(layer, "_flatten_layers", None)
    children = list(flatten(include_self=False, recursive=False)) if flatten is not None else []
    import keras

    for child in children:
        kind = type(child).__name__
        if kind == "InputLayer":
            continue
        if isinstance(child, keras.Model):
            out.extend(_structure(child))
            continue
        try:
            config = child.get_config()
        except Exception:  # a custom layer without get_config: its class and children still count
            config = {}
        keep = {k: config[k] for k in _STRUCTURAL if k in config}
        out.append([kind, keep, _structure(child)])
    return out


def _plain_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists; anything else becomes its str)."""
    return json.loads(json.dumps(value, default=str))


class StateStore:
    """Recurrent states of many series, kept by series id, for a trained stateful Keras model.

    Parameters
    ----------
    model : keras.Model
        The trained stateful model (Sequential or functional, one input ``(B, T, F)`` and one output
        ``(B, out)`` or ``(B, T, out)``; stacked layers fine; ``Bidirectional`` cannot be stepped). Its
        weights are shared, not copied.
    idle_timeout : float, optional
        Seconds after which a series not warmed or stepped is dropped by :meth:`evict_idle` (also run
        at the start of every :meth:`step`). ``None``: never.
    clock : callable, default ``time.monotonic``
        Time source for idle eviction (tests pass a fake clock).

    Attributes
    ----------
    spec : StateSpec
        The model's states, in the order of :meth:`states`.
    n_features : int
        Features per step the model takes.
    ids : list
        Series held, in the order they arrived.

    Notes
    -----
    Triton's sequence batcher vocabulary maps as: correlation id -> series id, START -> :meth:`warm`,
    END -> :meth:`drop`, a request -> :meth:`step`, ``max_sequence_idle_microseconds`` ->
    ``idle_timeout``.
    """

    def __init__(self, model: Any, *, idle_timeout: float | None = None, clock: Callable[[], float] = time.monotonic):
        from .inference import _stateless_model, check_model, state_spec

        check_model(model, "StateStore")
        self.model = model
        self.spec: StateSpec = state_spec(model)  # StatefulLayoutError without state
        if not self.spec.streamable:
            backward = [s.name for s in self.spec if not s.streamable][:3]
            raise UnsupportedModelError(
                f"model '{model.name}' has backward recurrent states ({backward}): a Bidirectional or go_backwards "
                "layer reads each call's input reversed, so one new step cannot continue a series.",
                "serve a unidirectional model; statebatch.inference.inference_model(model) still runs whole series.")
        self._twin = _stateless_model(model)[0]
        n_in = len(self._twin.inputs) - len(self.spec)
        n_out = len(self._twin.outputs) - len(self.spec)
        x_in = self._twin.inputs[0]
        if n_in != 1 or len(x_in.shape) != 3 or n_out != 1:
            raise UnsupportedModelError(
                f"model '{model.name}' has {plural(n_in, 'input')} and {plural(n_out, 'output')} (input shape "
                f"{tuple(x_in.shape)}); the state store serves one (batch, time, features) input and one output.",
                "wrap the extra inputs/outputs in a model with one input and one output, or call "
                "statebatch.inference.inference_model(model) directly.")
        self.n_features = int(x_in.shape[-1])
        self._x_dtype = str(x_in.dtype)
        out = self._twin.outputs[0]
        self._seq_output = len(out.shape) == 3  # return_sequences: (batch, time, out)
        self.n_outputs = int(out.shape[-1])
        self._masked = None  # the twin with a step-mask input, built on the first ragged warm-up
        self.idle_timeout = (None if idle_timeout is None else
                             check_real("idle_timeout", idle_timeout, minimum=0.0, strict=True, example="3600.0"))
        if not callable(clock):
            raise ParameterError(f"clock must be a function returning seconds, got {clock!r}.",
                                 "leave clock out (time.monotonic) or pass a callable.")
        self._clock = clock
        self._rows: dict[Any, int] = {}
        self._free: list[int] = []
        self._states = [np.zeros((0,) + tuple(s.shape), dtype=s.dtype) for s in self.spec]
        self._pred = np.zeros((0, self.n_outputs), dtype=np.float32)
        self._last = np.zeros(0, dtype=np.float64)
        self._steps = np.zeros(0, dtype=np.int64)
        self.timings = {"store_s": 0.0, "model_s": 0.0}  # gather/scatter/lookup vs model calls, summed

    # ---------------------------------------------------------------- bookkeeping
    @property
    def ids(self) -> list:
        return list(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, sid: Any) -> bool:
        try:
            return sid in self._rows
        except TypeError:  # unhashable: certainly not an id
            return False

    def __repr__(self) -> str:
        return (f"StateStore(series={len(self)}, states={self.spec.names}, features={self.n_features}, "
                f"idle_timeout={self.idle_timeout})")

    def steps_seen(self, ids: Any) -> np.ndarray:
        """Steps each series has consumed since it was warmed (or reset)."""
        return self._steps[self._lookup(ids)].copy()

    def states(self, ids: Any) -> list[np.ndarray]:
        """Copies of the state rows of ``ids``: one array ``(n, *shape)`` per state, in ``spec`` order."""
        rows = self._lookup(ids)
        return [s[rows].copy() for s in self._states]

    def last_prediction(self, ids: Any) -> np.ndarray:
        """The model's output after each series' last step ``(n, out)`` (for a next-value model: the
        forecast of the next step)."""
        return self._pred[self._lookup(ids)].copy()

    def _ids(self, ids: Any) -> list:
        return check_ids(ids)

    def _lookup(self, ids: Any) -> np.ndarray:
        return self._rows_of(ids)[1]

    def _rows_of(self, ids: Any) -> tuple[list, np.ndarray]:
        """The ids, read once and checked, and their rows."""
        ids = check_ids(ids)
        try:
            rows = np.fromiter((self._rows[i] for i in ids), dtype=np.int64, count=len(ids))
        except KeyError:
            unknown = [i for i in ids if i not in self._rows]
            raise UnknownSeriesError(
                f"{plural(len(unknown), 'series id')} not in the store: {unknown[:5]}"
                f"{' ...' if len(unknown) > 5 else ''} ({len(self)} series held).",
                "warm them first (store.warm(ids, histories)); idle series may have been evicted.") from None
        return ids, rows

    def _grow(self, extra: int) -> None:
        cap = len(self._last)
        new = max(16, cap * 2, cap + extra)
        self._states = [np.concatenate([s, np.zeros((new - cap,) + s.shape[1:], s.dtype)]) for s in self._states]
        self._pred = np.concatenate([self._pred, np.zeros((new - cap, self.n_outputs), self._pred.dtype)])
        self._last = np.concatenate([self._last, np.zeros(new - cap)])
        self._steps = np.concatenate([self._steps, np.zeros(new - cap, np.int64)])
        self._free.extend(range(new - 1, cap - 1, -1))  # pop() hands out the lowest rows first

    def _allocate(self, ids: list) -> np.ndarray:
        ids = check_ids(ids)
        new = [i for i in ids if i not in self._rows]
        if len(new) > len(self._free):
            self._grow(len(new) - len(self._free))
        for i in new:
            self._rows[i] = self._free.pop()
        return np.fromiter((self._rows[i] for i in ids), dtype=np.int64, count=len(ids))

    # ---------------------------------------------------------------- inputs
    def _values(self, values: Any, n: int, what: str) -> np.ndarray:
        """``(n, F)`` or ``(n, k, F)`` new values -> ``(n, k, F)`` in the model's dtype, checked."""
        try:
            x = np.asarray(values)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise ShapeError(f"{what} cannot be read as one array ({exc}).",
                             f"pass an array (n_series, {self.n_features}) or (n_series, steps, {self.n_features}).") from None
        if x.dtype.kind not in "biuf":
            raise DTypeError(f"{what} has dtype {x.dtype}, not numbers.", "pass float values.")
        if x.ndim == 1 and x.shape[0] == n and self.n_features == 1:
            x = x[:, None]  # one value per series
        elif x.ndim == 1 and n == 1 and x.shape[0] == self.n_features:
            x = x[None, :]  # one series, one step
        if x.ndim == 2:
            x = x[:, None, :]
        if x.ndim != 3 or x.shape[0] != n:
            raise ShapeError(f"{what} has shape {x.shape} for {plural(n, 'series', 'series')}.",
                             f"pass (n_series, {self.n_features}) for one step or (n_series, steps, {self.n_features}).")
        if x.shape[2] != self.n_features:
            raise ModelMismatchError(f"{what} has {x.shape[2]} features per step but the model takes {self.n_features}.",
                                     f"pass {self.n_features} feature(s) per step, in the order used in training.")
        if x.shape[1] == 0:
            raise ShapeError(f"{what} has no steps.", "pass at least one step per series.")
        x = x.astype(self._x_dtype, copy=False)
        if not np.isfinite(x).all():
            bad = np.unique(np.nonzero(~np.isfinite(x))[0])[:5].tolist()
            raise DataValueError(f"{what} holds NaN/inf (rows {bad}); a NaN step would poison the series' state for "
                                 "good.", "fill or drop missing values before stepping.")
        return x

    # ---------------------------------------------------------------- the model call
    def _call(self, model: Any, inputs: list[np.ndarray], n: int | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """One compiled call on rows padded to a bucket size (inputs of ``n`` rows, or already padded);
        returns the ``n`` real rows only."""
        import keras

        n = inputs[0].shape[0] if n is None else n
        m = _bucket(n)
        inputs = [a if a.shape[0] == m else np.concatenate([a, np.zeros((m - n,) + a.shape[1:], a.dtype)])
                  for a in inputs]
        t0 = time.perf_counter()
        out = model.predict_on_batch(inputs)
        out = [keras.ops.convert_to_numpy(o)[:n] for o in out]
        self.timings["model_s"] += time.perf_counter() - t0
        return out[0], out[1:]

    def _gather(self, rows: np.ndarray, x: np.ndarray) -> list[np.ndarray]:
        """``[x, *state rows]`` gathered straight into arrays padded to the call's bucket size (one copy each)."""
        n, m = len(rows), _bucket(len(rows))
        out = []
        for a in (x, *self._states):
            buf = np.empty((m,) + a.shape[1:], a.dtype)
            if a is x:
                buf[:n] = x
            else:
                np.take(a, rows, axis=0, out=buf[:n])
            buf[n:] = 0
            out.append(buf)
        return out

    def _advance(self, rows: np.ndarray, x: np.ndarray, start: bool = False) -> np.ndarray:
        t0 = time.perf_counter()
        inputs = [x, *self.spec.zeros(len(rows))] if start else self._gather(rows, x)
        self.timings["store_s"] += time.perf_counter() - t0
        y, new = self._call(self._twin, inputs, len(rows))
        t0 = time.perf_counter()
        for s, v in zip(self._states, new):
            s[rows] = v
        pred = y[:, -1] if self._seq_output else y
        self._pred[rows] = pred
        if start:
            self._steps[rows] = x.shape[1]
        else:
            self._steps[rows] += x.shape[1]  # rows are distinct (checked in _lookup)
        self._last[rows] = self._clock()
        self.timings["store_s"] += time.perf_counter() - t0
        return pred

    # ---------------------------------------------------------------- public operations
    def warm(self, ids: Any, histories: Any, *, chunk_rows: int = 4096) -> np.ndarray:
        """Start series from zero state and run each one's history exactly.

        Parameters
        ----------
        ids : list of str/int, n entries
            New ids are added; ids already held start again from zero (Triton's START).
        histories : list of arrays ``(length_i, F)`` (lengths may differ), or one array ``(n, length, F)``
        chunk_rows : int
            Rows per model call. Series are sorted by length and each call is padded to its longest
            member with a per-row step mask, so padded steps never change a state.

        Returns
        -------
        ndarray ``(n, out)``: the model's output after each series' last step.
        """
        ids = self._ids(ids)
        chunk_rows = check_int("chunk_rows", chunk_rows, 1)
        if isinstance(histories, np.ndarray) and histories.ndim == 3:
            histories = list(histories)
        if isinstance(histories, (abc.Mapping, abc.Set)) or isinstance(histories, (str, bytes)):
            raise ParameterError(f"histories must be a list of arrays in the order of ids, got a "
                                 f"{type(histories).__name__}.", "pass [history_of_id for id in ids].")
        try:
            histories = list(histories)
        except TypeError:
            raise ParameterError(f"histories must be a list of arrays, got {type(histories).__name__}.",
                                 "pass one (length, features) array per id.") from None
        if len(histories) != len(ids):
            raise ShapeError(f"{plural(len(ids), 'id')} but {plural(len(histories), 'history', 'histories')}.",
                             "pass one history per id.")
        xs = []
        for sid, h in zip(ids, histories):
            try:
                h = np.asarray(h) if not isinstance(h, np.ndarray) else h
            except (ValueError, TypeError) as exc:  # ragged nested lists
                raise ShapeError(f"the history of series {sid!r} cannot be read as one array ({exc}).",
                                 f"pass one (length, {self.n_features}) array per series.") from None
            if h.ndim not in (1, 2) or (h.ndim == 1 and self.n_features != 1):
                raise ShapeError(f"the history of series {sid!r} has shape {h.shape}.",
                                 f"pass one (length, {self.n_features}) array per series.")
            if h.ndim == 1 and self.n_features == 1:
                h = h[:, None]
            xs.append(self._values(h[None] if h.ndim == 2 else h, 1, f"history of series {sid!r}")[0])
        rows = self._allocate(ids)
        lengths = np.array([len(x) for x in xs], dtype=np.int64)
        order = np.argsort(lengths, kind="stable")
        preds = np.empty((len(ids), self.n_outputs), dtype=self._pred.dtype)
        for c in range(0, len(order), chunk_rows):
            part = order[c:c + chunk_rows]
            lens = lengths[part]
            if lens.min() == lens.max():  # one length: no mask needed
                x = np.stack([xs[j] for j in part])
                preds[part] = self._advance(rows[part], x, start=True)
                continue
            preds[part] = self._warm_ragged(rows[part], [xs[j] for j in part], lens)
        return preds

    def _warm_ragged(self, rows: np.ndarray, xs: list, lens: np.ndarray) -> np.ndarray:
        if self._masked is None:
            from .inference import _stateless_model

            self._masked = _stateless_model(self.model, with_mask=True)[0]
        t = _bucket(int(lens.max()))
        check_size("a ragged warm-up call (rows x padded steps x features)", (len(xs), t, self.n_features),
                   np.dtype(self._x_dtype).itemsize)
        x = np.zeros((len(xs), t, self.n_features), dtype=self._x_dtype)
        for r, a in enumerate(xs):
            x[r, :len(a)] = a
        mask = np.arange(t)[None, :] < lens[:, None]
        y, new = self._call(self._masked, [x, *self.spec.zeros(len(rows)), mask])
        for s, v in zip(self._states, new):
            s[rows] = v
        pred = y[np.arange(len(rows)), lens - 1] if self._seq_output else y
        self._pred[rows] = pred
        self._steps[rows] = lens
        self._last[rows] = self._clock()
        return pred

    def warm_from(self, arranged: Any, **kwargs) -> np.ndarray:
        """Take the series of a training arrangement into the store, each at the end of its data.

        Every series of ``arranged`` (e.g. the training part of :meth:`Arranged.split`) is run from zero
        state over all its steps with the model's current (trained) weights, so forecasting starts
        where training ended. Why not read the lanes' state variables after ``fit``: a lane that moved
        on to its next series has overwritten the state of the one before, and during the epoch the
        weights changed after every batch; the run with the final weights gives every series the state
        the trained model reaches on its history.

        Returns the model's output after each series' last step ``(n_series, out)`` (with
        ``targets='next'``: the forecast of the first step after the training part).
        """
        ss = getattr(arranged, "_ss", None)
        if ss is None or not hasattr(arranged, "series_ids"):
            raise ParameterError(f"warm_from needs an arrangement, got {type(arranged).__name__}.",
                                 "pass the result of statebatch.arrange_stateful (or the training part of its split).")
        histories = [ss.series(i) for i in range(ss.n_series)]  # the training part only, after a split
        return self.warm(list(arranged.series_ids), histories, **kwargs)

    def step(self, ids: Any, new_values: Any) -> np.ndarray:
        """Advance only the series ``ids`` by their new values, all in one model call.

        Parameters
        ----------
        ids : list of n distinct series ids held by the store
        new_values : array ``(n, F)`` (one step each) or ``(n, k, F)`` (k steps each)

        Returns
        -------
        ndarray ``(n, out)``: the model's output after each series' last new step.
        """
        if self.idle_timeout is not None:
            self.evict_idle()
        t0 = time.perf_counter()
        rows = self._lookup(ids)
        self.timings["store_s"] += time.perf_counter() - t0
        x = self._values(new_values, len(rows), "new_values")
        if len(rows) == 0:
            return np.zeros((0, self.n_outputs), dtype=self._pred.dtype)
        return self._advance(rows, x)

    def forecast(self, ids: Any, horizon: int, *, advance: bool = False) -> np.ndarray:
        """Recursive multi-step forecast of a next-value model (its output is its next input).

        Step 1 is the model's last output; each further step feeds the forecast back as the next
        input, on copies of the states.

        Parameters
        ----------
        ids : list of series ids
        horizon : int
            Steps ahead.
        advance : bool, default False
            False: the stored states and predictions stay as they are. True: the series end as if
            :meth:`step` had been called with the ``horizon`` forecasts.

        Returns
        -------
        ndarray ``(n, horizon, F)``
        """
        horizon = check_int("horizon", horizon, 1)
        advance = check_bool("advance", advance)
        if self.n_outputs != self.n_features:
            raise ModelMismatchError(
                f"the model outputs {self.n_outputs} value(s) per step but takes {self.n_features} feature(s): its "
                "output cannot be fed back as its next input.",
                "forecast recursively only with a next-value model (targets='next' on all features); otherwise step "
                "with the real new values.")
        rows = self._lookup(ids)
        check_size("the forecast (series x horizon x features)", (len(rows), horizon, self.n_features),
                   self._pred.dtype.itemsize)
        out = np.empty((len(rows), horizon, self.n_features), dtype=self._pred.dtype)
        if len(rows) == 0:
            return out
        states = [s[rows] for s in self._states]
        y = self._pred[rows]
        n_calls = horizon if advance else horizon - 1
        for h in range(horizon):
            out[:, h] = y
            if h < n_calls:
                step_out, states = self._call(self._twin, [y[:, None, :].astype(self._x_dtype), *states])
                y = step_out[:, -1] if self._seq_output else step_out
        if advance:
            for s, v in zip(self._states, states):
                s[rows] = v
            self._pred[rows] = y
            self._steps[rows] += horizon
            self._last[rows] = self._clock()
        return out

    def reset(self, ids: Any = None) -> None:
        """Zero the states of ``ids`` (all series when None); they stay in the store."""
        if ids is None:
            rows = np.fromiter(self._rows.values(), dtype=np.int64, count=len(self._rows))
        else:
            rows = self._lookup(ids)
        for s in self._states:
            s[rows] = 0
        self._pred[rows] = 0
        self._steps[rows] = 0

    def drop(self, ids: Any) -> None:
        """Remove series (Triton's END); their rows are reused by later series."""
        ids, rows = self._rows_of(ids)  # read once: a generator is not read twice
        for sid in ids:
            del self._rows[sid]
        self._release(rows)

    def _release(self, rows: np.ndarray) -> None:
        for s in self._states:
            s[rows] = 0
        self._pred[rows] = 0
        self._steps[rows] = 0
        self._free.extend(int(r) for r in rows)

    def evict_idle(self, max_idle: float | None = None) -> list:
        """Drop series not warmed or stepped for ``max_idle`` seconds (default ``idle_timeout``).

        Returns the ids dropped.
        """
        limit = self.idle_timeout if max_idle is None else check_real("max_idle", max_idle, minimum=0.0,
                                                                      example="3600.0")
        if limit is None:
            raise ParameterError("no idle limit: the store has idle_timeout=None.", "pass max_idle=seconds.")
        now = self._clock()
        gone = [sid for sid, r in self._rows.items() if now - self._last[r] > limit]
        if gone:
            self.drop(gone)
        return gone

    # ---------------------------------------------------------------- persistence
    def signature(self) -> dict:
        """What a saved file must match: the model's structure (layer classes and what they compute, in
        order), its states (class, kind, direction, shape, dtype), the input/output sizes, the weights'
        shapes and dtypes and a hash of their values.

        No name enters it: Keras names layers ``lstm``, ``lstm_1``, ... by how many were built before in
        the process, so the same model rebuilt after a restart has other names.
        """
        import keras

        h = hashlib.sha256()
        shapes = []
        # Recurrent state variables and random-seed counters change with every call: not part of the model.
        skip = {id(v) for info in self.spec for v in (info.layer.states or []) if v is not None}
        for w in self.model.weights:  # in model order, which is the layers' order: names play no part
            if id(w) in skip or "seed_generator" in str(getattr(w, "path", "")) or "rnn_state" in str(w.name):
                continue
            a = np.ascontiguousarray(keras.ops.convert_to_numpy(w.value))
            shapes.append([list(a.shape), a.dtype.str])
            h.update(a.tobytes())
        return _plain_json({
            "layers": _structure(self.model),
            "states": [[s.layer_class, s.kind, s.direction, list(s.shape), s.dtype] for s in self.spec],
            "n_features": self.n_features, "n_outputs": self.n_outputs, "weights": shapes,
            "weights_sha256": h.hexdigest()})


    def save(self, path: str | os.PathLike) -> Path:
        """Write every series' states, last prediction and step count with their ids to ``path`` (``.npz``).

        Atomic and serialised (see the module docstring): a temporary file unique to this save is
        written, ``fsync``ed and moved into place with ``os.replace`` under an advisory lock, so a
        process killed while saving leaves the previous file or the new one, whole; temporary files of
        dead writers are removed; of concurrent saves to one path the last one is the file.
        """
        path = Path(check_path("path", path))
        if path.is_dir():
            raise StoreError(f"{str(path)!r} is a directory.", "pass a file path such as 'states.npz' inside it.")
        ids = list(self._rows)
        rows = np.fromiter(self._rows.values(), dtype=np.int64, count=len(ids))
        meta = {"format": _FORMAT, "ids": ids, "signature": self.signature(), "saved_at": time.time()}
        arrays = {f"state_{j}": s[rows] for j, s in enumerate(self._states)}
        arrays.update(prediction=self._pred[rows], steps=self._steps[rows])
        buf = io.BytesIO()
        np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
        try:
            write_atomic(path, buf.getbuffer())
        except OSError as exc:
            raise StoreError(f"cannot write the state store to {str(path)!r} ({exc.strerror or exc}).",
                             "pass a path in an existing, writable directory with free space.") from None
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, model: Any, *, check_weights: bool = True, **kwargs) -> "StateStore":
        """A store for ``model`` with the states saved in ``path``.

        Raises :class:`~statebatch.errors.StoreError`, naming the file and the fix, when the file is
        missing, a directory, unreadable, truncated, not a state store, malformed (missing or extra
        arrays, ids that are not distinct str/int, shapes or dtypes that do not match the model), holds
        NaN/inf states or negative step counts, or was written for another model (other structure,
        states, sizes or weight shapes; with ``check_weights``, also other weight values: states computed
        with other weights do not continue these).

        Files of the previous format (``statebatch.StateStore/1``, whose signature named the layers)
        load with a :class:`~statebatch.errors.StatebatchWarning` when everything but the names matches;
        saving again writes the current format. Temporary files of dead writers next to ``path`` are
        removed.
        """
        check_weights = check_bool("check_weights", check_weights)
        path = Path(check_path("path", path))
        meta, arrays = _read_file(path)  # the file's form first: no model is rebuilt for a file that is no store
        store = cls(model, **kwargs)
        store._check_signature(path, meta, check_weights)
        ids, n = meta["ids"], len(meta["ids"])
        where = f"{str(path)!r}"
        fix = "the file is damaged or was not written by StateStore.save: save the store again (or restore a backup)."
        names = {"prediction", "steps", *(f"state_{j}" for j in range(len(store.spec)))}
        missing, extra = sorted(names - set(arrays)), sorted(set(arrays) - names)
        if missing or extra:
            raise StoreError(f"{where} does not hold the arrays a store of this model has"
                             f"{': missing ' + str(missing) if missing else ''}"
                             f"{'; unexpected ' + str(extra) if extra else ''}.", fix)
        expected = {f"state_{j}": ((n,) + tuple(s.shape), np.dtype(s.dtype)) for j, s in enumerate(store.spec)}
        expected["prediction"] = ((n, store.n_outputs), None)
        expected["steps"] = ((n,), None)
        for key, (shape, dtype) in expected.items():
            a = arrays[key]
            if a.shape != shape:
                raise StoreError(f"{where} holds {key} of shape {a.shape}, but {shape} for its {plural(n, 'id')} and "
                                 "this model.", fix)
            if key == "steps":
                if a.dtype.kind not in "iu":
                    raise StoreError(f"{where} holds step counts of dtype {a.dtype}, not integers.", fix)
                if n and int(a.min()) < 0:
                    raise StoreError(f"{where} holds negative step counts (series {ids[int(np.argmin(a))]!r}: "
                                     f"{int(a.min())}).", fix)
                continue
            if (dtype is not None and a.dtype != dtype) or a.dtype.kind != "f":
                raise StoreError(f"{where} holds {key} of dtype {a.dtype}, but the model's is "
                                 f"{dtype or 'a float dtype'}.", fix)
            if not np.isfinite(a).all():
                bad = ids[int(np.nonzero((~np.isfinite(a.reshape(n, -1))).any(axis=1))[0][0])]
                raise StoreError(f"{where} holds NaN/inf in {key} (series {bad!r} first); such a state would poison "
                                 "every later step of its series.", fix)
        rows = store._allocate(ids)
        for j, s in enumerate(store._states):
            s[rows] = arrays[f"state_{j}"]
        store._pred[rows] = arrays["prediction"]
        store._steps[rows] = arrays["steps"]
        store._last[rows] = store._clock()
        return store

    def _check_signature(self, path: Path, meta: dict, check_weights: bool) -> None:
        mine, theirs = self.signature(), meta.get("signature")
        where = f"{str(path)!r}"
        if not isinstance(theirs, dict):
            raise StoreError(f"{where} holds no model signature.", "save the store again with StateStore.save.")
        if meta["format"] == _OLD_FORMAT:  # layer names ignored: [name, class, shape, dtype] -> [class, shape, dtype]
            old = theirs.get("states")
            theirs = {**theirs, "states": [list(s[1:]) for s in old] if isinstance(old, list) and all(
                isinstance(s, list) and len(s) == 4 for s in old) else old}
            mine = {**mine, "states": [[s[0], s[3], s[4]] for s in mine["states"]]}
            keys = ("states", "n_features", "n_outputs", "weights")
        else:
            keys = ("layers", "states", "n_features", "n_outputs", "weights")
        for key in keys:
            if theirs.get(key) != mine[key]:
                raise StoreError(
                    f"{where} was saved for another model: its {key} differ ({str(theirs.get(key))[:160]} vs "
                    f"{str(mine[key])[:160]}).", "load it with the model it was saved with (the same layers, in the "
                    "same order, with the same sizes; layer names do not matter).")
        if check_weights and theirs.get("weights_sha256") != mine["weights_sha256"]:
            raise StoreError(f"{where} was saved with other weight values than the model's: the states were "
                             "computed by other weights.",
                             "load it with the model it was saved with, or pass check_weights=False to continue from "
                             "them anyway (e.g. after fine-tuning).")
        if meta["format"] == _OLD_FORMAT:
            warnings.warn(f"{where} has the older format {_OLD_FORMAT}, whose signature named the layers; everything "
                          "else (states, sizes, weights) matches this model, so it was loaded. Save the store again to "
                          "write the current format.", StatebatchWarning, stacklevel=3)


def _read_file(path: Path) -> tuple[dict, dict]:
    """The metadata and arrays of a state store file, checked for form (not yet against a model).
    Every failure is a :class:`StoreError` naming the file."""
    where = f"{str(path)!r}"
    remove_stale_temps(path)
    fix = "pass a file written by StateStore.save (it may be truncated, damaged or another file)."
    if path.is_dir():
        raise StoreError(f"{where} is a directory, not a state store file.", "pass the path given to store.save().")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise StoreError(f"no state store file at {where}.", "pass the path given to store.save().") from None
    except OSError as exc:
        raise StoreError(f"cannot read {where} ({exc.strerror or exc}).", "check the path and its permissions.") from None
    if data[:6] == b"\x93NUMPY":
        raise StoreError(f"{where} is a single .npy array, not a state store (.npz written by StateStore.save).", fix)
    if data[:2] != b"PK":
        raise StoreError(f"{where} is not a state store file (not a zip/.npz archive; {len(data)} bytes).", fix)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            names = set(z.files)
            if "meta" not in names:
                raise StoreError(f"{where} is not a state store file (no 'meta' entry; it holds {sorted(names)[:6]}).",
                                 fix)
            raw = z["meta"]
            if raw.dtype != np.uint8 or raw.ndim != 1:
                raise StoreError(f"{where} has a malformed 'meta' entry ({raw.dtype}, shape {raw.shape}).", fix)
            meta = json.loads(bytes(raw).decode("utf-8"))
            if not isinstance(meta, dict) or meta.get("format") not in (_FORMAT, _OLD_FORMAT):
                got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
                raise StoreError(f"{where} is not a state store file of a known format (format {got!r}; this version "
                                 f"reads {_FORMAT} and {_OLD_FORMAT}).", fix)
            arrays = {k: z[k] for k in names - {"meta"}}
    except StoreError:
        raise
    except Exception as exc:  # zipfile, zlib, numpy, json, unicode: all mean "not a whole store file"
        raise StoreError(f"{where} is not a readable state store file ({type(exc).__name__}: {exc}).", fix) from None
    ids = meta.get("ids")
    if not isinstance(ids, list) or any(isinstance(i, bool) or not isinstance(i, (str, int)) for i in ids):
        raise StoreError(f"{where} holds malformed series ids (a list of str/int was expected, got "
                         f"{str(ids)[:80]}).", fix)
    if len(set(ids)) != len(ids):
        raise StoreError(f"{where} lists a series id more than once.", fix)
    return meta, arrays
