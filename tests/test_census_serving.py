"""Census, serving part: bad inputs and injected faults over StateStore, inference_model and prepared stores.

Every case ends in a statebatch error whose message carries a ``Fix:`` line (store files: naming the
file), or in a result checked against an independent expectation; a refused call leaves the store as it
was. The crash and concurrency cases use real processes: writers killed with SIGKILL in the middle of
saving, several processes and 30 threads saving one path, a writer blocked by the save lock, and a
store saved in one process and loaded in a fresh one where Keras names the same layers differently.

The StateStore and inference_model cases are marked ``backend`` (run under TensorFlow, JAX and torch);
the file-level fault cases (kill loop, concurrent writers, prepared stores) do not depend on Keras'
backend and run once.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keras import layers

from _threads import run_threads

from statebatch.errors import (DataValueError, DTypeError, ModelMismatchError, ParameterError, ShapeError,
                               StatebatchError, StatebatchWarning, StoreError, UnknownSeriesError,
                               UnsupportedModelError)
from statebatch.serving.inference import get_states, inference_model, set_states, state_spec
from statebatch.serving.files import remove_stale_temps, save_lock
from statebatch.serving.statestore import StateStore

F = 2
REPO = pathlib.Path(__file__).resolve().parents[1]
TMP = pathlib.Path(tempfile.mkdtemp(prefix="statebatch-census-serving-"))


def build(*, batch=4, units=3, kind=layers.LSTM, names=None, stateful=True):
    """A small stateful next-value model; layer names left to Keras unless given."""
    names = names or [None, None]
    return keras.Sequential([keras.Input(batch_shape=(batch, None, F)),
                             kind(units, stateful=stateful, return_sequences=True, name=names[0]),
                             layers.Dense(F, name=names[1])])


def hist(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, F)).astype("float32")


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(3)
    return build()


@pytest.fixture(scope="module")
def store(model):
    """A store warmed with a, b, c; refused calls must leave it exactly as it is (checked after each)."""
    s = StateStore(model)
    s.warm(["a", "b", "c"], [hist(5, 1), hist(7, 2), hist(3, 3)])
    return s


def snapshot(s):
    return s.ids, [a.copy() for a in s.states(s.ids)], s.steps_seen(s.ids), s.last_prediction(s.ids)


def assert_same(before, after):
    assert before[0] == after[0]
    for x, y in zip(before[1], after[1]):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(before[2], after[2])
    np.testing.assert_array_equal(before[3], after[3])


def assert_statebatch_error(exc, cls):
    assert isinstance(exc, cls), f"{type(exc).__name__}: {exc}"
    assert isinstance(exc, StatebatchError) and isinstance(exc, (ValueError, TypeError))
    assert "\n  Fix: " in str(exc), str(exc)


def _gen(*ids):
    return (i for i in ids)


ONE = np.zeros((1, F), "float32")
TWO = np.zeros((2, F), "float32")

# ---------------------------------------------------------------- StateStore: arguments and ids
STORE_CASES = [
    ("step ids a set", lambda s: s.step({"a", "b"}, TWO), ParameterError),
    ("step ids a frozenset", lambda s: s.step(frozenset({"a", "b"}), TWO), ParameterError),
    ("step ids a dict", lambda s: s.step({"a": 1, "b": 2}, TWO), ParameterError),
    ("step ids a single str", lambda s: s.step("a", ONE), ParameterError),
    ("step ids bytes", lambda s: s.step(b"a", ONE), ParameterError),
    ("step ids a single int", lambda s: s.step(3, ONE), ParameterError),
    ("step ids None", lambda s: s.step(None, ONE), ParameterError),
    ("step ids 2-D array", lambda s: s.step(np.array([["a"], ["b"]]), TWO), ParameterError),
    ("step duplicate ids", lambda s: s.step(["a", "a"], TWO), ParameterError),
    ("step duplicate ids in a generator", lambda s: s.step(_gen("a", "a"), TWO), ParameterError),
    ("step id True (== 1)", lambda s: s.step([True], ONE), ParameterError),
    ("step id float", lambda s: s.step([1.0], ONE), ParameterError),
    ("step id None", lambda s: s.step([None], ONE), ParameterError),
    ("step id a list (unhashable)", lambda s: s.step([["a"]], ONE), ParameterError),
    ("step unknown id", lambda s: s.step(["a", "zz"], TWO), UnknownSeriesError),
    ("step values text", lambda s: s.step(["a"], [["x", "y"]]), DTypeError),
    ("step values ragged", lambda s: s.step(["a", "b"], [[0.0, 1.0], [1.0]]), ShapeError),
    ("step values NaN", lambda s: s.step(["a"], [[np.nan, 0.0]]), DataValueError),
    ("step values inf", lambda s: s.step(["a"], [[np.inf, 0.0]]), DataValueError),
    ("step values too many features", lambda s: s.step(["a"], np.zeros((1, 3))), ModelMismatchError),
    ("step values wrong count", lambda s: s.step(["a", "b"], np.zeros((3, F))), ShapeError),
    ("step values zero steps", lambda s: s.step(["a"], np.zeros((1, 0, F))), ShapeError),
    ("step values complex", lambda s: s.step(["a"], np.zeros((1, F), complex)), DTypeError),
    ("warm ids a set", lambda s: s.warm({"x", "y"}, [hist(3), hist(4)]), ParameterError),
    ("warm duplicate ids", lambda s: s.warm(["x", "x"], [hist(3), hist(4)]), ParameterError),
    ("warm histories a dict", lambda s: s.warm(["x"], {"x": hist(3)}), ParameterError),
    ("warm histories a set", lambda s: s.warm(["x"], {1}), ParameterError),
    ("warm histories a str", lambda s: s.warm(["x"], "abc"), ParameterError),
    ("warm histories None", lambda s: s.warm(["x"], None), ParameterError),
    ("warm history ragged rows", lambda s: s.warm(["x"], [[[0.0, 1.0], [1.0]]]), ShapeError),
    ("warm history 3-D", lambda s: s.warm(["x"], [np.zeros((2, 3, F))]), ShapeError),
    ("warm history 1-D for 2 features", lambda s: s.warm(["x"], [np.zeros(5)]), ShapeError),
    ("warm history empty", lambda s: s.warm(["x"], [np.zeros((0, F))]), ShapeError),
    ("warm history NaN", lambda s: s.warm(["x", "y"], [hist(3), np.full((4, F), np.nan)]), DataValueError),
    ("warm history text", lambda s: s.warm(["x"], [np.array([["a", "b"]])]), DTypeError),
    ("warm fewer histories", lambda s: s.warm(["x", "y"], [hist(3)]), ShapeError),
    ("warm chunk_rows True", lambda s: s.warm(["x"], [hist(3)], chunk_rows=True), ParameterError),
    ("warm chunk_rows 0", lambda s: s.warm(["x"], [hist(3)], chunk_rows=0), ParameterError),
    ("warm chunk_rows -2", lambda s: s.warm(["x"], [hist(3)], chunk_rows=-2), ParameterError),
    ("warm chunk_rows 2.5", lambda s: s.warm(["x"], [hist(3)], chunk_rows=2.5), ParameterError),
    ("forecast horizon 0", lambda s: s.forecast(["a"], 0), ParameterError),
    ("forecast horizon -1", lambda s: s.forecast(["a"], -1), ParameterError),
    ("forecast horizon 1.5", lambda s: s.forecast(["a"], 1.5), ParameterError),
    ("forecast horizon True", lambda s: s.forecast(["a"], True), ParameterError),
    ("forecast horizon '3'", lambda s: s.forecast(["a"], "3"), ParameterError),
    ("forecast horizon beyond memory", lambda s: s.forecast(["a", "b"], 10**12), ParameterError),
    ("forecast advance 'no'", lambda s: s.forecast(["a"], 2, advance="no"), ParameterError),
    ("forecast advance 1", lambda s: s.forecast(["a"], 2, advance=1), ParameterError),
    ("forecast advance None", lambda s: s.forecast(["a"], 2, advance=None), ParameterError),
    ("forecast ids a set", lambda s: s.forecast({"a", "b"}, 2), ParameterError),
    ("forecast duplicate ids", lambda s: s.forecast(["a", "a"], 2), ParameterError),
    ("evict_idle max_idle -1", lambda s: s.evict_idle(max_idle=-1), ParameterError),
    ("evict_idle max_idle nan", lambda s: s.evict_idle(max_idle=float("nan")), ParameterError),
    ("evict_idle max_idle inf", lambda s: s.evict_idle(max_idle=float("inf")), ParameterError),
    ("evict_idle max_idle True", lambda s: s.evict_idle(max_idle=True), ParameterError),
    ("evict_idle max_idle 'abc'", lambda s: s.evict_idle(max_idle="abc"), ParameterError),
    ("evict_idle without a limit", lambda s: s.evict_idle(), ParameterError),
    ("reset ids a set", lambda s: s.reset({"a"}), ParameterError),
    ("reset duplicate ids", lambda s: s.reset(["a", "a"]), ParameterError),
    ("reset unknown id", lambda s: s.reset(["zz"]), UnknownSeriesError),
    ("drop ids a set", lambda s: s.drop({"a"}), ParameterError),
    ("drop duplicate ids", lambda s: s.drop(["a", "a"]), ParameterError),
    ("drop duplicate ids in a generator", lambda s: s.drop(_gen("a", "a")), ParameterError),
    ("drop unknown id among known", lambda s: s.drop(["a", "zz"]), UnknownSeriesError),
    ("states ids a set", lambda s: s.states({"a", "b"}), ParameterError),
    ("states duplicate ids", lambda s: s.states(["a", "a"]), ParameterError),
    ("steps_seen ids a frozenset", lambda s: s.steps_seen(frozenset({"a"})), ParameterError),
    ("last_prediction single id", lambda s: s.last_prediction("a"), ParameterError),
    ("save None", lambda s: s.save(None), ParameterError),
    ("save an int", lambda s: s.save(3), ParameterError),
    ("save empty str", lambda s: s.save(""), ParameterError),
    ("save to a directory", lambda s: s.save(TMP), StoreError),
    ("save into a missing directory", lambda s: s.save(TMP / "no" / "such" / "s.npz"), StoreError),
    ("load check_weights 'yes'", lambda s: StateStore.load(TMP / "x.npz", s.model, check_weights="yes"),
     ParameterError),
]


@pytest.mark.backend
@pytest.mark.parametrize("name,call,cls", STORE_CASES, ids=[c[0] for c in STORE_CASES])
def test_store_refusals_name_the_fix_and_leave_the_store_alone(store, name, call, cls):
    before = snapshot(store)
    with pytest.raises(StatebatchError) as info:
        call(store)
    assert_statebatch_error(info.value, cls)
    assert_same(before, snapshot(store))


CONSTRUCTOR_CASES = [
    ("idle_timeout True", dict(idle_timeout=True)),
    ("idle_timeout 'abc'", dict(idle_timeout="abc")),
    ("idle_timeout 0", dict(idle_timeout=0)),
    ("idle_timeout -5", dict(idle_timeout=-5)),
    ("idle_timeout nan", dict(idle_timeout=float("nan"))),
    ("idle_timeout inf", dict(idle_timeout=float("inf"))),
    ("clock not callable", dict(clock=5.0)),
]


@pytest.mark.backend
@pytest.mark.parametrize("name,kwargs", CONSTRUCTOR_CASES, ids=[c[0] for c in CONSTRUCTOR_CASES])
def test_store_constructor_arguments_are_checked(model, name, kwargs):
    with pytest.raises(ParameterError) as info:
        StateStore(model, **kwargs)
    assert_statebatch_error(info.value, ParameterError)


@pytest.mark.backend
def test_ids_are_read_once_and_ordered_views_pair_values_by_position(model):
    s = StateStore(model)
    s.warm(_gen("s0", "s1", "s2"), [hist(4, 10), hist(6, 11), hist(5, 12)])
    assert s.ids == ["s0", "s1", "s2"]
    ref = StateStore(model)
    ref.warm(["s0", "s1", "s2"], [hist(4, 10), hist(6, 11), hist(5, 12)])
    # the case: a generator passed to drop frees the slot AND removes the id
    s.drop(x for x in ["s0"])
    assert "s0" not in s and s.ids == ["s1", "s2"] and len(s) == 2
    s.warm(iter(["s3"]), [hist(8, 13)])  # reuses s0's row: s1 and s2 must not be touched
    ref.warm(["s3"], [hist(8, 13)])
    for a, b in zip(s.states(["s1", "s2", "s3"]), ref.states(["s1", "s2", "s3"])):
        np.testing.assert_array_equal(a, b)
    # a dict's keys view keeps insertion order: values pair by position, like a list
    new = {"s2": hist(1, 20)[0], "s1": hist(1, 21)[0]}
    got = s.step(new.keys(), np.stack(list(new.values())))
    want = ref.step(["s2", "s1"], np.stack([new["s2"], new["s1"]]))
    np.testing.assert_array_equal(got, want)
    # generators everywhere ids are taken
    np.testing.assert_array_equal(s.steps_seen(_gen("s1", "s2")), ref.steps_seen(["s1", "s2"]))
    np.testing.assert_array_equal(s.forecast(_gen("s1"), 3), ref.forecast(["s1"], 3))
    s.reset(_gen("s1"))
    assert all(np.all(a == 0) for a in s.states(iter(["s1"])))
    # numpy ids come back as plain Python ids (they are saved as JSON)
    s.warm(np.array([7, 8]), [hist(3), hist(3)])
    assert s.ids[-2:] == [7, 8] and all(type(i) is int for i in s.ids[-2:])


@pytest.mark.backend
def test_arguments_that_used_to_pass_silently_now_mean_what_they_say(model):
    now = [0.0]
    s = StateStore(model, idle_timeout=10, clock=lambda: now[0])
    assert s.idle_timeout == 10.0
    s.warm(["a", "b"], [hist(3), hist(4)])
    now[0] = 5.0
    assert s.evict_idle(max_idle=0) == ["a", "b"]  # 0 s: everything idle for any time at all
    s.warm(["a"], [hist(3)])
    pred0, st0 = s.last_prediction(["a"]), s.states(["a"])
    s.forecast(["a"], 4, advance=False)  # an explicit False leaves the store alone
    np.testing.assert_array_equal(s.last_prediction(["a"]), pred0)
    for x, y in zip(s.states(["a"]), st0):
        np.testing.assert_array_equal(x, y)


POOL = ["a", "b", 3, "d", 5]
FORMS = {"list": list, "tuple": tuple, "generator": lambda ids: (i for i in ids), "iterator": iter,
         "keys view": lambda ids: dict.fromkeys(ids).keys(), "array": lambda ids: np.array(ids, dtype=object)}


@pytest.mark.backend
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(ops=st.lists(st.tuples(st.sampled_from(["warm", "step", "drop", "reset"]),
                              st.lists(st.sampled_from(POOL), min_size=1, max_size=4, unique=True),
                              st.sampled_from(sorted(FORMS))), min_size=1, max_size=8),
       seed=st.integers(0, 1000))
def test_random_operations_never_mix_the_states_of_series(model, ops, seed):
    """Whatever the order of warm/step/drop/reset and however the ids are passed (generators included),
    each series' last prediction is the plain (stateless) Keras model run on that series' own steps since
    it was warmed or reset: no slot is shared, no series sees another's values."""
    plain = build(batch=None, stateful=False)
    plain.set_weights(model.get_weights())
    rng = np.random.default_rng(seed)
    s = StateStore(model)
    seen: dict = {}  # id -> its steps since warm or reset
    for op, ids, form in ops:
        if op != "warm":
            ids = [i for i in ids if i in seen]
            if not ids:
                continue
        wrapped = FORMS[form](ids)
        if op == "warm":
            hs = [rng.normal(size=(int(rng.integers(1, 6)), F)).astype("float32") for _ in ids]
            s.warm(wrapped, hs)
            seen.update({i: list(h) for i, h in zip(ids, hs)})
        elif op == "step":
            values = rng.normal(size=(len(ids), F)).astype("float32")
            s.step(wrapped, values)
            for i, v in zip(ids, values):
                seen[i].append(v)
        elif op == "drop":
            s.drop(wrapped)
            for i in ids:
                del seen[i]
        else:
            s.reset(wrapped)
            for i in ids:
                seen[i] = []
    assert sorted(map(str, s.ids)) == sorted(map(str, seen)) and len(s) == len(seen)
    for i, steps in seen.items():
        if not steps:
            assert all(np.all(a == 0) for a in s.states([i]))
            continue
        want = np.asarray(keras.ops.convert_to_numpy(plain(np.stack(steps)[None])))[0, -1]
        np.testing.assert_allclose(s.last_prediction([i])[0], want, atol=1e-5)
        assert s.steps_seen([i])[0] == len(steps)


# ---------------------------------------------------------------- inference_model and friends: non-models
NON_MODELS = [
    ("ndarray", np.zeros((3, 2))),
    ("None", None),
    ("int", 42),
    ("str", "model.keras"),
    ("a layer", layers.Dense(2)),
    ("a list of layers", [layers.Dense(2)]),
]


@pytest.mark.backend
@pytest.mark.parametrize("fn", ["inference_model", "StateStore", "state_spec", "get_states"])
@pytest.mark.parametrize("what,obj", NON_MODELS, ids=[c[0] for c in NON_MODELS])
def test_a_non_model_says_what_was_given_and_what_is_expected(fn, what, obj):
    call = {"inference_model": inference_model, "StateStore": StateStore, "state_spec": state_spec,
            "get_states": get_states}[fn]
    with pytest.raises(ParameterError) as info:
        call(obj)
    assert_statebatch_error(info.value, ParameterError)
    msg = str(info.value)
    assert "needs a Keras model" in msg and type(obj).__name__ in msg and "subclassed" not in msg


def _subclassed():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.rnn = layers.LSTM(2, stateful=True)

        def call(self, x):
            return self.rnn(x)

    m = Net()
    m(np.zeros((4, 3, F), "float32"))
    return m


def _initial_state():
    inp = keras.Input(batch_shape=(4, None, F))
    h = keras.Input(batch_shape=(4, 2))
    out = layers.GRU(2, stateful=True)(inp, initial_state=[h])
    return keras.Model([inp, h], out)


INFERENCE_CASES = [
    ("subclassed model", lambda: inference_model(_subclassed()), UnsupportedModelError),
    ("subclassed model, batch size 1", lambda: inference_model(_subclassed(), 1), UnsupportedModelError),
    ("explicit initial_state", lambda: inference_model(_initial_state()), UnsupportedModelError),
    ("stateless twin has no state variables", lambda: get_states(inference_model(build())), UnsupportedModelError),
    ("batch_size True", lambda: inference_model(build(), True), ParameterError),
    ("batch_size 0", lambda: inference_model(build(), 0), ParameterError),
    ("batch_size -1", lambda: inference_model(build(), -1), ParameterError),
    ("batch_size 1.5", lambda: inference_model(build(), 1.5), ParameterError),
    ("batch_size '2'", lambda: inference_model(build(), "2"), ParameterError),
    ("share_weights 'yes'", lambda: inference_model(build(), share_weights="yes"), ParameterError),
    ("free_time 1", lambda: inference_model(build(), free_time=1), ParameterError),
    ("set_states strings", lambda: set_states(build(), [np.full((4, 3), "a")] * 2), DTypeError),
    ("set_states numeric strings", lambda: set_states(build(), [np.full((4, 3), "1.0")] * 2), DTypeError),
    ("set_states NaN", lambda: set_states(build(), [np.full((4, 3), np.nan)] * 2), DataValueError),
    ("set_states inf", lambda: set_states(build(), [np.zeros((4, 3)), np.full((4, 3), np.inf)]), DataValueError),
    ("set_states ragged", lambda: set_states(build(), [[[0.0] * 3] * 3 + [[0.0]], np.zeros((4, 3))]), ShapeError),
    ("set_states one array, not a list", lambda: set_states(build(), np.zeros((2, 4, 3))), ParameterError),
    ("set_states a str", lambda: set_states(build(), "zeros"), ParameterError),
    ("set_states too few", lambda: set_states(build(), [np.zeros((4, 3))]), ShapeError),
    ("set_states wrong shape", lambda: set_states(build(), [np.zeros((5, 3))] * 2), ShapeError),
    ("set_states objects", lambda: set_states(build(), [np.array([None] * 12).reshape(4, 3)] * 2), DTypeError),
    ("StateStore of a Bidirectional model", lambda: StateStore(keras.Sequential([
        keras.Input(batch_shape=(4, None, F)), layers.Bidirectional(layers.GRU(2, stateful=True))])),
     UnsupportedModelError),
]


@pytest.mark.backend
@pytest.mark.parametrize("name,call,cls", INFERENCE_CASES, ids=[c[0] for c in INFERENCE_CASES])
def test_inference_refusals_carry_a_fix_line(name, call, cls):
    with pytest.raises(StatebatchError) as info:
        call()
    assert_statebatch_error(info.value, cls)


@pytest.mark.backend
def test_set_states_with_checked_values_round_trips():
    m = build()
    values = [np.arange(12, dtype="float32").reshape(4, 3) * k for k in (1, 2)]
    set_states(m, [v.astype("float64") for v in values])  # another float dtype is cast, not refused
    for got, want in zip(get_states(m), values):
        np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- load: everything a file can be
_GOOD: dict = {}


def _saved(model, path):
    """A good store file of ``model`` (series a, b, c) at ``path``: built once per model, copied after."""
    if id(model) not in _GOOD:
        s = StateStore(model)
        s.warm(["a", "b", "c"], [hist(3 + i, i) for i in range(3)])
        _GOOD[id(model)] = (model, s.save(path).read_bytes())
    path.write_bytes(_GOOD[id(model)][1])
    return path


def _parts(path):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(bytes(arrays.pop("meta")).decode())
    return meta, arrays


def _write(path, meta, arrays):
    buf = io.BytesIO()
    meta_arr = meta if isinstance(meta, np.ndarray) else np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(buf, **({"meta": meta_arr} if meta is not None else {}), **arrays)
    path.write_bytes(buf.getvalue())


def _edit(fn):
    """A corruption: takes (meta, arrays) of a good file, returns (meta, arrays) of the bad one."""
    def make(model, path):
        good = path.with_name("good-" + path.name)
        _saved(model, good)
        meta, arrays = _parts(good)
        meta, arrays = fn(meta, arrays)
        _write(path, meta, arrays)
    return make


def _set(arrays, key, value):
    out = dict(arrays)
    if value is None:
        out.pop(key)
    else:
        out[key] = value
    return out


def _nan_state(m, a):
    s0 = a["state_0"].copy()
    s0[1, 0] = np.nan
    return m, _set(a, "state_0", s0)


def _raw(data):
    def make(model, path):
        path.write_bytes(data(model, path) if callable(data) else data)
    return make


def _truncated(fraction):
    def data(model, path):
        good = _saved(model, path.with_name("full-" + path.name))
        raw = good.read_bytes()
        return raw[: int(len(raw) * fraction)]
    return _raw(data)


def _zip_with(members):
    def data(model, path):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for k, v in members.items():
                zf.writestr(k, v)
        return buf.getvalue()
    return _raw(data)


def _npy(model, path):
    buf = io.BytesIO()
    np.save(buf, np.zeros((3, 2)))
    path.write_bytes(buf.getvalue())


def _directory(model, path):
    path.mkdir()


def _missing(model, path):
    pass


LOAD_CASES = [
    ("NaN state", _edit(_nan_state), "NaN/inf"),
    ("inf prediction", _edit(lambda m, a: (m, _set(a, "prediction", np.full_like(a["prediction"], np.inf)))), "NaN/inf"),
    ("negative step count", _edit(lambda m, a: (m, _set(a, "steps", np.array([3, -1, 2])))), "negative step"),
    ("float step counts", _edit(lambda m, a: (m, _set(a, "steps", a["steps"].astype(float)))), "not integers"),
    ("state of another shape", _edit(lambda m, a: (m, _set(a, "state_0", np.zeros((3, 4), "float32")))), "shape"),
    ("state for fewer ids", _edit(lambda m, a: (m, _set(a, "state_1", a["state_1"][:2]))), "shape"),
    ("state float64", _edit(lambda m, a: (m, _set(a, "state_0", a["state_0"].astype("float64")))), "dtype"),
    ("state as ints", _edit(lambda m, a: (m, _set(a, "state_0", a["state_0"].astype("int32")))), "dtype"),
    ("prediction as text", _edit(lambda m, a: (m, _set(a, "prediction", np.full((3, F), "x")))), "dtype"),
    ("missing state array", _edit(lambda m, a: (m, _set(a, "state_1", None))), "missing"),
    ("missing steps", _edit(lambda m, a: (m, _set(a, "steps", None))), "missing"),
    ("extra array", _edit(lambda m, a: (m, _set(a, "state_9", np.zeros(3)))), "unexpected"),
    ("no meta entry", _edit(lambda m, a: (None, a)), "no 'meta'"),
    ("meta not JSON", _edit(lambda m, a: (np.frombuffer(b"{not json", np.uint8), a)), "not a readable"),
    ("meta not UTF-8", _edit(lambda m, a: (np.frombuffer(b"\xff\xfe\x00", np.uint8), a)), "not a readable"),
    ("meta as float array", _edit(lambda m, a: (np.zeros(4), a)), "malformed 'meta'"),
    ("meta a JSON list", _edit(lambda m, a: (np.frombuffer(b"[1, 2]", np.uint8), a)), "known format"),
    ("unknown format", _edit(lambda m, a: ({**m, "format": "other/9"}, a)), "known format"),
    ("ids not a list", _edit(lambda m, a: ({**m, "ids": "abc"}, a)), "malformed series ids"),
    ("ids with a bool", _edit(lambda m, a: ({**m, "ids": ["a", True, "c"]}, a)), "malformed series ids"),
    ("ids with a float", _edit(lambda m, a: ({**m, "ids": ["a", 1.5, "c"]}, a)), "malformed series ids"),
    ("ids with null", _edit(lambda m, a: ({**m, "ids": ["a", None, "c"]}, a)), "malformed series ids"),
    ("duplicate ids", _edit(lambda m, a: ({**m, "ids": ["a", "a", "c"]}, a)), "more than once"),
    ("fewer ids than rows", _edit(lambda m, a: ({**m, "ids": ["a", "b"]}, a)), "shape"),
    ("no signature", _edit(lambda m, a: ({k: v for k, v in m.items() if k != "signature"}, a)), "no model signature"),
    ("signature a list", _edit(lambda m, a: ({**m, "signature": [1]}, a)), "no model signature"),
    ("signature of other weights", _edit(lambda m, a: ({**m, "signature": {**m["signature"], "weights_sha256": "0"}},
                                                        a)), "other weight values"),
    ("signature of other layers", _edit(lambda m, a: ({**m, "signature": {**m["signature"], "layers": []}}, a)),
     "another model"),
    ("a .npy file", _npy, "single .npy array"),
    ("a text file", _raw(b"id,value\na,1\n"), "not a zip"),
    ("an empty file", _raw(b""), "not a zip"),
    ("zip of text members", _zip_with({"meta.npy": b"hello", "steps.npy": b"x"}), "not a readable"),
    ("zip without members", _zip_with({}), "no 'meta'"),
    ("zip with a pickled meta", _zip_with({"meta.npy": b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': "
                                           b"False, 'shape': (1,), }" + b" " * 60 + b"\n"}), "not a readable"),
    ("truncated at 10%", _truncated(0.1), ""),
    ("truncated at 50%", _truncated(0.5), ""),
    ("truncated at 99%", _truncated(0.99), ""),
    ("a directory", _directory, "directory"),
    ("a missing file", _missing, "no state store file"),
]


@pytest.mark.backend
@pytest.mark.parametrize("name,make,match", LOAD_CASES, ids=[c[0] for c in LOAD_CASES])
def test_load_refuses_every_bad_file_with_its_name(model, tmp_path, name, make, match):
    path = tmp_path / "bad.npz"
    make(model, path)
    with pytest.raises(StoreError) as info:
        StateStore.load(path, model)
    assert_statebatch_error(info.value, StoreError)
    assert str(path) in str(info.value) and match in str(info.value)


@pytest.mark.backend
def test_load_path_arguments_are_checked(model):
    for bad in (None, 3, ""):
        with pytest.raises(ParameterError) as info:
            StateStore.load(bad, model)
        assert_statebatch_error(info.value, ParameterError)


# ---------------------------------------------------------------- a restart: names differ, structure does not
@pytest.mark.backend
def test_the_same_architecture_built_twice_in_one_process_loads_the_store(tmp_path):
    first = build()
    for _ in range(3):  # move Keras' name counters on, as a long-running process does
        layers.LSTM(2)
        layers.Dense(1)
    second = build()
    second.set_weights(first.get_weights())
    assert [layer.name for layer in first.layers] != [layer.name for layer in second.layers]
    s = StateStore(first)
    s.warm(["a", "b"], [hist(5, 1), hist(9, 2)])
    loaded = StateStore.load(s.save(tmp_path / "s.npz"), second)
    new = hist(2, 7)
    np.testing.assert_array_equal(loaded.step(["b", "a"], new), s.step(["b", "a"], new))
    # a different architecture is still refused, whatever its names: units, class, layer order
    for other in (build(units=4), build(kind=layers.GRU), keras.Sequential([
            keras.Input(batch_shape=(4, None, F)), layers.Dense(3),
            layers.LSTM(3, stateful=True, return_sequences=True), layers.Dense(F)])):
        with pytest.raises(StoreError, match="another model"):
            StateStore.load(tmp_path / "s.npz", other)


CHILD = r"""
import os, sys, json
import numpy as np
import keras
from keras import layers
from statebatch.serving.statestore import StateStore
F = 2
model = keras.Sequential([keras.Input(batch_shape=(4, None, F)), layers.LSTM(3, stateful=True, return_sequences=True),
                          layers.Dense(F)])
w = np.load(sys.argv[1])
model.set_weights([w[f"w{i}"] for i in range(len(w.files))])
store = StateStore.load(sys.argv[2], model)
out = store.step(["b", "a"], np.load(sys.argv[3]))
np.save(sys.argv[4], out)
store.save(sys.argv[5])
print(json.dumps({"names": [l.name for l in model.layers], "backend": keras.backend.backend()}))
"""


@pytest.mark.backend
def test_a_store_saved_in_one_process_loads_in_a_fresh_one_and_back(tmp_path):
    for _ in range(4):
        layers.LSTM(2)  # this process's LSTM is not named "lstm"; the fresh one's is
    model = build()
    s = StateStore(model)
    s.warm(["a", "b"], [hist(6, 1), hist(4, 2)])
    s.save(tmp_path / "parent.npz")
    np.savez(tmp_path / "w.npz", **{f"w{i}": w for i, w in enumerate(model.get_weights())})
    new = hist(2, 9)
    np.save(tmp_path / "new.npy", new)
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend(), "PYTHONPATH": str(REPO),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    run = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "w.npz"), str(tmp_path / "parent.npz"),
                          str(tmp_path / "new.npy"), str(tmp_path / "out.npy"), str(tmp_path / "child.npz")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    info = json.loads(run.stdout.strip().splitlines()[-1])
    assert info["backend"] == keras.backend.backend()
    assert info["names"][0] != model.layers[0].name  # the names really differ between the processes
    expected = s.step(["b", "a"], new)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)
    back = StateStore.load(tmp_path / "child.npz", model)  # and the child's file loads here
    for x, y in zip(back.states(["a", "b"]), s.states(["a", "b"])):
        np.testing.assert_array_equal(x, y)


@pytest.mark.backend
def test_old_name_based_files_load_with_a_warning_only_when_all_but_the_names_match(model, tmp_path):
    good = _saved(model, tmp_path / "v2.npz")
    meta, arrays = _parts(good)
    spec = state_spec(model)
    sig = meta["signature"]
    old_sig = {"states": [[f"lstm_99:{s.kind}", s.layer_class, list(s.shape), s.dtype] for s in spec],
               "n_features": sig["n_features"], "n_outputs": sig["n_outputs"], "weights": sig["weights"],
               "weights_sha256": sig["weights_sha256"]}
    old = {**meta, "format": "statebatch.StateStore/1", "signature": old_sig}
    _write(tmp_path / "v1.npz", old, arrays)
    with pytest.warns(StatebatchWarning, match="older format"):
        loaded = StateStore.load(tmp_path / "v1.npz", model)
    for x, y in zip(loaded.states(["a", "b", "c"]), StateStore.load(good, model).states(["a", "b", "c"])):
        np.testing.assert_array_equal(x, y)
    bad = {**old, "signature": {**old_sig, "weights": sig["weights"][:-1]}}
    _write(tmp_path / "v1-other.npz", bad, arrays)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StatebatchWarning)  # refused outright, no warning first
        with pytest.raises(StoreError, match="another model"):
            StateStore.load(tmp_path / "v1-other.npz", model)


# ---------------------------------------------------------------- saves: threads, processes, SIGKILL
def _payloads(model, tmp_path, k=3):
    """k complete store files with different states; their bytes."""
    out = []
    for j in range(k):
        s = StateStore(model)
        s.warm([f"s{i}" for i in range(400)], np.random.default_rng(j).normal(size=(400, 3, F)).astype("float32"))
        out.append(s.save(tmp_path / f"payload{j}.npz").read_bytes())
    return out


def _leftovers(directory, name):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(f".{name}."))


def test_thirty_threads_saving_one_path_all_succeed_and_leave_one_whole_file(model, tmp_path):
    stores = []
    for j in range(3):
        s = StateStore(model)
        s.warm([f"t{j}-{i}" for i in range(50)], np.full((50, 2, F), j, "float32"))
        stores.append(s)
    path = tmp_path / "s.npz"
    errors = run_threads(lambda j: stores[j % 3].save(path), [(j,) for j in range(30)], together=True)
    assert errors == []  # every save succeeds
    loaded = StateStore.load(path, model)
    owner = [j for j in range(3) if loaded.ids == stores[j].ids]
    assert len(owner) == 1
    for x, y in zip(loaded.states(loaded.ids), stores[owner[0]].states(loaded.ids)):
        np.testing.assert_array_equal(x, y)
    assert _leftovers(tmp_path, "s.npz") == []  # no temporary or lock file left


WRITER = r"""
import sys
from statebatch.serving.files import write_atomic
target, count = sys.argv[1], int(sys.argv[2])
datas = [open(p, "rb").read() for p in sys.argv[3:]]
print("ready", flush=True)
i = 0
while count < 0 or i < count:
    write_atomic(target, datas[i % len(datas)])
    i += 1
"""


def _writer(path, payload_paths, count=-1):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(count), *map(str, payload_paths)],
                            stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_writer_processes_killed_mid_save_forty_times_never_leave_a_broken_file(model, tmp_path):
    payloads = _payloads(model, tmp_path)
    ppaths = [tmp_path / f"payload{j}.npz" for j in range(3)]
    path = tmp_path / "live" / "s.npz"
    path.parent.mkdir()
    path.write_bytes(payloads[0])
    s = StateStore.load(path, model)
    modules = subprocess.run(
        [sys.executable, "-c", "import sys, statebatch.serving.files; print(' '.join(sys.modules))"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True).stdout.split()
    assert "numpy" in modules and "keras" not in modules  # the writer starts fast: no Keras to import
    rng = np.random.default_rng(0)
    hit_mid_save = 0
    for _ in range(40):
        proc = _writer(path, ppaths)
        time.sleep(float(rng.uniform(0.005, 0.08)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        hit_mid_save += any(n.endswith(".tmp") for n in _leftovers(path.parent, "s.npz"))
        assert path.read_bytes() in payloads  # always one complete save, never a mix or a prefix
        StateStore.load(path, model)  # and it loads (the load also removes the dead writer's temp file)
        assert not any(n.endswith(".tmp") for n in _leftovers(path.parent, "s.npz"))
    assert hit_mid_save >= 1  # the kills did land while a temporary file was being written
    s.save(path)  # the next save removes the lock file a killed writer left behind
    assert _leftovers(path.parent, "s.npz") == [] and sorted(os.listdir(path.parent)) == ["s.npz"]


def test_concurrent_writer_processes_each_finish_and_the_last_whole_file_wins(model, tmp_path):
    payloads = _payloads(model, tmp_path)
    path = tmp_path / "s.npz"
    procs = [_writer(path, [tmp_path / f"payload{j % 3}.npz"], count=15) for j in range(4)]
    for p in procs:
        p.wait(timeout=120)
        p.stdout.close()
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    assert path.read_bytes() in payloads
    assert StateStore.load(path, model).ids == [f"s{i}" for i in range(400)]
    assert _leftovers(tmp_path, "s.npz") == []


def test_the_save_lock_makes_a_second_process_wait(model, tmp_path):
    payloads = _payloads(model, tmp_path, k=2)
    path = tmp_path / "s.npz"
    path.write_bytes(payloads[0])
    with save_lock(path):
        proc = _writer(path, [tmp_path / "payload1.npz"], count=1)
        time.sleep(1.5)
        assert proc.poll() is None and path.read_bytes() == payloads[0]  # blocked: nothing replaced
    proc.wait(timeout=60)
    proc.stdout.close()
    assert proc.returncode == 0 and path.read_bytes() == payloads[1]
    assert _leftovers(tmp_path, "s.npz") == []


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.parametrize("when", ["save", "load"])
def test_temporary_files_of_dead_writers_are_removed_and_live_ones_kept(model, tmp_path, when):
    path = tmp_path / "s.npz"
    s = StateStore(model)
    s.warm(["a"], [hist(3)])
    s.save(path)
    dead = [tmp_path / f".s.npz.{_dead_pid()}.abc123.tmp", tmp_path / f".s.npz.{_dead_pid()}.tmp"]  # new and old names
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".s.npz.{sleeper.pid}.def456.tmp"
        other = tmp_path / f".other.npz.{_dead_pid()}.x.tmp"  # another file's temp: not ours to judge
        for p in (*dead, live, other):
            p.write_bytes(b"x" * 1000)
        if when == "save":
            s.save(path)
        else:
            StateStore.load(path, model)
        assert not any(p.exists() for p in dead)
        assert live.exists() and other.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert remove_stale_temps(path) == [live.name]  # its writer is gone now


def test_a_failed_write_removes_its_own_temporary_file(model, tmp_path, monkeypatch):
    path = tmp_path / "s.npz"
    s = StateStore(model)
    s.warm(["a"], [hist(3)])
    s.save(path)
    old = path.read_bytes()
    s.step(["a"], ONE)

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("statebatch.serving.files.os.fsync", full_disk)
    with pytest.raises(StoreError) as info:
        s.save(path)
    assert_statebatch_error(info.value, StoreError)
    assert "No space left" in str(info.value) and path.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["s.npz"]


# ---------------------------------------------------------------- prepared stores: content checked on first read
def _prepared(tmp_path, name="p"):
    import dask
    import dask.dataframe as dd
    import pandas as pd

    from statebatch.dask import prepare

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"id": np.repeat([0, 1, 2, 3], 60), "v": rng.normal(size=240).astype("float32")})
    out = tmp_path / name
    with dask.config.set(scheduler="synchronous"):
        stored = prepare(dd.from_pandas(df, npartitions=3), out, id_col="id")
    return out, stored


def _cp_p(shard, values):
    """Rewrite a shard in place with other values of the same shape and put its modification time back."""
    st = shard.stat()
    np.save(shard, values)
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))


def _all_rows(stored):
    return stored.store.read(0, len(stored.store))


@pytest.mark.parametrize("change", ["reversed rows", "one value", "zeros"])
def test_a_shard_changed_with_its_time_restored_is_refused_on_first_read(tmp_path, change):
    from statebatch.sources.npy import open_prepared

    out, stored = _prepared(tmp_path)
    shard = sorted(out.glob("part-*.npy"))[1]
    orig = np.load(shard)
    new = {"reversed rows": orig[::-1].copy(), "zeros": np.zeros_like(orig)}.get(change)
    if new is None:
        new = orig.copy()
        new[len(new) // 2, 0] += 1.0
    _cp_p(shard, new)
    reopened = open_prepared(out)  # opening reads no data
    with pytest.raises(StoreError) as info:
        _all_rows(reopened)
    assert_statebatch_error(info.value, StoreError)
    assert shard.name in str(info.value) and "prepare the store again" in str(info.value)
    with pytest.raises(StoreError, match="checksum"):  # the store prepare returned notices too
        _all_rows(stored)
    assert len(_all_rows(open_prepared(out, check_content=False))) == 240  # the documented opt-out


def test_the_content_check_costs_one_read_per_shard_per_process_not_per_epoch(tmp_path, monkeypatch):
    from statebatch.sources.npy import NpyStore, open_prepared

    out, _ = _prepared(tmp_path, "once")
    calls = []
    real = NpyStore.crc32
    monkeypatch.setattr(NpyStore, "crc32", lambda self: calls.append(self.path.name) or real(self))
    first = open_prepared(out)
    for _ in range(3):  # three epochs, read in batches of 16 rows
        for lo in range(0, len(first.store), 16):
            first.store.read(lo, min(lo + 16, len(first.store)))
    n_shards = len(list(out.glob("part-*.npy")))
    assert sorted(calls) == sorted({c for c in calls}) and len(calls) == n_shards
    _all_rows(open_prepared(out))  # reopened in the same process: already checked
    assert len(calls) == n_shards
    # changed in place while in use (time restored): the change time moved, so the next read checks again
    shard = sorted(out.glob("part-*.npy"))[0]
    _cp_p(shard, np.load(shard)[::-1].copy())
    with pytest.raises(StoreError, match="checksum"):
        _all_rows(first)


@pytest.mark.parametrize("bad", ["no", 1, None])
def test_open_prepared_check_content_is_a_bool(tmp_path, bad):
    from statebatch.sources.npy import open_prepared

    out, _ = _prepared(tmp_path)
    with pytest.raises(ParameterError) as info:
        open_prepared(out, check_content=bad)
    assert_statebatch_error(info.value, ParameterError)


def test_an_unchanged_prepared_store_reads_the_prepared_rows(tmp_path):
    from statebatch.sources.npy import open_prepared

    out, stored = _prepared(tmp_path)
    np.testing.assert_array_equal(_all_rows(open_prepared(out)), _all_rows(stored))
    open_prepared(out).store.verify()
