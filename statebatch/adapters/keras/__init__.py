"""Keras 3 adapter: statebatch results as PyDatasets, and a callback that resets state per lane.

Importing this package imports keras. The epoch logic (which lanes reset before batch k, the
in-order guard, keeping validation state apart) lives in :mod:`statebatch.results.schedule`; this
package only maps it onto Keras, one module per concept:

- :mod:`.backends`: every Keras-backend difference (JAX state tracking and the one trainer sync, JAX
  sharding, torch state rebinding, TensorFlow replicas); no other module asks which backend runs.
- :mod:`.state`: reading and writing recurrent state (:class:`KerasState`, :func:`reset_rows`), also
  for serving (:mod:`statebatch.serving.inference`).
- :mod:`.datasets`: the ``PyDataset``s (:class:`StatefulDataset` serves ``result.batch(k)`` in order).
- :mod:`.callbacks`: :class:`LaneResetCallback` (the schedule in Keras' hooks) and the backup callbacks.
- :mod:`.losses`: losses over real steps. :mod:`.tfdata`: :func:`to_tf_dataset`.
- :mod:`.training`: :func:`fit_stateful`, :func:`predict`, :func:`evaluate`; :mod:`.resume`: backups.

Keras 3 facts this package relies on (checked in the installed version, see tests and the shared
``KERAS_FACTS.md``):

- ``fit(shuffle=True)`` (the default) permutes a finite PyDataset's batch indices every epoch, so
  :class:`StatefulDataset` refuses out-of-order requests with a clear error.
- There is no ``Model.reset_states()`` and no per-row reset: :class:`KerasState` finds every stateful
  RNN layer (inside nested models, ``Bidirectional`` and stacks) and zeroes rows of its state
  variables with ``v.assign(v * keep)``.
- Validation inside ``fit`` runs the same stateful layers and overwrites their state: the callback
  saves the training state before validation and restores it afterwards.

Several devices: under JAX's ``keras.distribution.DataParallel`` the model is built for the global
batch and the lanes' states are sharded along it (:func:`track_state`); under TensorFlow's
``tf.distribute`` strategies the model is built per replica (:func:`model_batch_size`) and
:class:`KerasState` reads and writes each replica's consecutive block of lanes.
"""

from .backends import state_is_tracked, stateful_scope, track_state, untrack_state
from .callbacks import LaneResetCallback
from .datasets import BucketDataset, Dataset, ShardDataset, StatefulDataset, WindowDataset
from .losses import RealStepLoss, check_real_step_loss, epoch_mean_weights, use_real_step_loss
from .state import KerasState, model_batch_size, replicas, reset_rows, stateful_layers
from .tfdata import to_tf_dataset
from .training import check_model, evaluate, fit_stateful, predict

__all__ = ["Dataset", "WindowDataset", "StatefulDataset", "BucketDataset", "ShardDataset", "LaneResetCallback",
           "KerasState", "fit_stateful", "reset_rows", "stateful_layers", "check_model", "to_tf_dataset",
           "stateful_scope", "track_state", "untrack_state", "state_is_tracked", "predict", "use_real_step_loss",
           "replicas", "model_batch_size", "RealStepLoss", "check_real_step_loss", "evaluate", "epoch_mean_weights"]
