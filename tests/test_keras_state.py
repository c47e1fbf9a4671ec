"""One Keras state module with one sync, backend branches in one module, and the StatefulDataset mode's name."""
import ast
import pathlib

import keras
import numpy as np
import pytest

import statebatch as sb
from statebatch.errors import ParameterError, StatefulLayoutError
from statebatch.keras import KerasState, StatefulDataset, reset_rows
from statebatch.serving.inference import get_states, reset_states, set_states

pytestmark = pytest.mark.backend

PACKAGE = pathlib.Path(sb.__file__).parent
KERAS_CODE = sorted((PACKAGE / "adapters" / "keras").glob("*.py")) + sorted((PACKAGE / "serving").glob("*.py"))
BACKENDS = PACKAGE / "adapters" / "keras" / "backends.py"


def _backend_questions(path: pathlib.Path) -> list[str]:
    """Places in ``path`` that ask which Keras backend runs, or sync the JAX trainer themselves."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in ("backend", "jax_state_sync") \
                and ast.unparse(node) in ("keras.backend.backend", "model.jax_state_sync"):
            found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
        if isinstance(node, ast.Constant) and node.value == "jax_state_sync":
            found.append(f"{path.name}:{node.lineno} 'jax_state_sync'")
        if isinstance(node, ast.Compare) and any(isinstance(c, ast.Constant) and c.value in ("tensorflow", "jax", "torch")
                                                 for c in [node.left, *node.comparators]):
            found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    return found


def test_only_the_backends_module_asks_which_backend_runs():
    assert _backend_questions(BACKENDS), "the scan finds nothing even in backends.py: it cannot fail"
    outside = [hit for path in KERAS_CODE if path != BACKENDS for hit in _backend_questions(path)]
    assert not outside, outside


def test_serving_reads_and_writes_state_through_the_adapters_state_module():
    inference = (PACKAGE / "serving" / "inference.py").read_text()
    assert "from ..adapters.keras.state import KerasState" in inference
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input(batch_shape=(3, 4, 2)), keras.layers.LSTM(5, stateful=True),
                          keras.layers.Dense(1)])
    m(np.random.default_rng(0).normal(size=(3, 4, 2)).astype("float32"))
    via_serving, via_adapter = get_states(m), KerasState(m).snapshot()
    assert len(via_serving) == 2 and all(np.abs(s).sum() > 0 for s in via_serving)
    for a, b in zip(via_serving, via_adapter):
        np.testing.assert_array_equal(a, b)
    new = [np.full((3, 5), 0.25, "float32"), np.full((3, 5), -0.5, "float32")]
    set_states(m, new)
    for a, b in zip(KerasState(m).snapshot(), new):
        np.testing.assert_array_equal(a, b)
    reset_rows(m, [1])
    assert get_states(m)[0][1].tolist() == [0.0] * 5 and get_states(m)[0][0].tolist() == [0.25] * 5
    reset_states(m)
    assert all(not s.any() for s in KerasState(m).snapshot())


def test_reset_rows_with_no_rows_changes_nothing():
    m = keras.Sequential([keras.Input(batch_shape=(2, 3, 1)), keras.layers.GRU(2, stateful=True)])
    set_states(m, [np.ones((2, 2), "float32")])
    reset_rows(m, [])  # an empty list is float to numpy; it used to fail as an index
    np.testing.assert_array_equal(get_states(m)[0], np.ones((2, 2)))
    with pytest.raises(ParameterError, match="lane indices"):
        reset_rows(m, [0.5])


def test_stateful_dataset_mode_is_resets_by_and_resets_is_deprecated():
    a = sb.arrange_stateful([np.arange(10.0), np.arange(7.0), np.arange(12.0)], timesteps=3, batch_size=2)
    assert StatefulDataset(a).resets_by == "callback"
    assert StatefulDataset(a, resets_by="manual").resets_by == "manual"
    with pytest.warns(FutureWarning, match="resets_by"):
        old = StatefulDataset(a, resets="manual")
    assert old.resets_by == "manual"
    np.testing.assert_array_equal(old.resets, a.resets)  # .resets stays the array of lane resets
    k = int(np.flatnonzero(np.asarray(a.resets)[1:].any(axis=1))[0]) + 1  # a batch that starts a new series
    callback = StatefulDataset(a)
    for j in range(k):
        old[j], callback[j]
    old[k]  # manual: served without a callback
    with pytest.raises(StatefulLayoutError, match="resets_by='manual'"):
        callback[k]
    with pytest.raises(ParameterError, match="resets_by"):
        StatefulDataset(a, resets_by="manual", resets="callback")
    with pytest.raises(ParameterError, match="resets_by"):
        StatefulDataset(a, resets_by="sometimes")
