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

- *crash*: a save writes a temporary file of its own, ``fsync``s it and moves it into place with
  ``os.replace``; a process killed at any point leaves either the previous file or the new one,
  whole (:mod:`statebatch.serving.files`);
- *concurrency*: saves to one path, from threads or processes, take an advisory lock and so run
  one at a time; the file is always one complete save, the *last* one (last writer wins: saves are
  not merged, a series only the earlier writer held is not in the file). Local filesystems only.

The file's format, the model signature and the checks a file passes on loading are in
:mod:`statebatch.serving.storefile`. Keras is imported by :mod:`statebatch.serving.inference`, which
this module needs, only when a store is built: importing this module (and the file-writing helpers)
needs only numpy.
"""

from __future__ import annotations

import collections.abc as abc
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .._args import check_bool, check_int, check_path, check_real, check_size, plural
from ..errors import (DataValueError, DTypeError, ModelMismatchError, ParameterError, ShapeError, StoreError,
                      UnknownSeriesError, UnsupportedModelError)
# remove_stale_temps and save_lock are imported too so that the path before the split
# (statebatch.statestore.save_lock, a moved module kept for one release) still finds them.
from .files import remove_stale_temps, save_lock, write_atomic  # noqa: F401
from .ids import check_ids
from .storefile import FORMAT, _model_signature, check_signature, check_store_arrays, encode_store, read_store_file

if TYPE_CHECKING:
    from .inference import StateSpec

__all__ = ["StateStore"]


def _bucket(n: int) -> int:
    """Rows (or steps) padded up to a few shapes, so compiled backends (JAX, tf.function) trace once per
    bucket, not once per size: powers of two up to 1024, then multiples of 1024. Padded rows run on
    zero state and are thrown away; they are never scattered back."""
    if n <= 1024:
        return 1 << max(0, (n - 1).bit_length())
    return -(-n // 1024) * 1024


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

    def __init__(self, model: Any, *, idle_timeout: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
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

    def warm_from(self, arranged: Any, **kwargs: Any) -> np.ndarray:
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
        return _model_signature(self.model, self.spec, self.n_features, self.n_outputs)

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
        meta = {"format": FORMAT, "ids": ids, "signature": self.signature(), "saved_at": time.time()}
        arrays = {f"state_{j}": s[rows] for j, s in enumerate(self._states)}
        arrays.update(prediction=self._pred[rows], steps=self._steps[rows])
        try:
            write_atomic(path, encode_store(meta, arrays))
        except OSError as exc:
            raise StoreError(f"cannot write the state store to {str(path)!r} ({exc.strerror or exc}).",
                             "pass a path in an existing, writable directory with free space.") from None
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, model: Any, *, check_weights: bool = True, **kwargs: Any) -> "StateStore":
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
        meta, arrays = read_store_file(path)  # the file's form first: no model is rebuilt for a file that is no store
        store = cls(model, **kwargs)
        where, ids = f"{str(path)!r}", meta["ids"]
        check_signature(where, meta, store.signature(), check_weights)
        expected: dict[str, tuple[tuple, Any]] = {
            f"state_{j}": ((len(ids),) + tuple(s.shape), np.dtype(s.dtype)) for j, s in enumerate(store.spec)}
        expected["prediction"] = ((len(ids), store.n_outputs), None)
        expected["steps"] = ((len(ids),), None)
        check_store_arrays(where, arrays, ids, expected)
        rows = store._allocate(ids)
        for j, s in enumerate(store._states):
            s[rows] = arrays[f"state_{j}"]
        store._pred[rows] = arrays["prediction"]
        store._steps[rows] = arrays["steps"]
        store._last[rows] = store._clock()
        return store
