"""What differs between Keras backends in the tests (the test logic itself never does)."""
import contextlib

import keras
import pytest

BACKEND = keras.backend.backend()


def raises_in_keras_loop(cls, match: str):
    """``pytest.raises`` for a statebatch error raised by a dataset inside a plain Keras loop.

    On TensorFlow the dataset runs inside tf.data, which re-raises it as an InvalidArgumentError whose
    message contains the original class name and message (KERAS_FACTS.md); JAX and torch let the
    statebatch error itself through.
    """
    if BACKEND == "tensorflow":
        return pytest.raises(Exception, match=cls.__name__ + ": " + match)
    return pytest.raises(cls, match=match)


def warns_on_tensorflow(cls):
    """A warning that only the TensorFlow backend needs (its PyDataset adapter's unknown batch size)."""
    return pytest.warns(cls) if BACKEND == "tensorflow" else contextlib.nullcontext()


def after_error_in_loop(model) -> None:
    """On JAX, an exception inside fit/evaluate/predict leaves the model's variables detached from the
    trainer's values (Keras' JAX trainer purges them during a loop); ``jax_state_sync`` re-attaches them."""
    if BACKEND == "jax":
        model.jax_state_sync()
