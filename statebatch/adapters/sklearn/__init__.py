"""scikit-learn transformers: windowing and stateful arrangement inside preprocessing pipelines.

``make_pipeline(StandardScaler(), WindowTransformer(timesteps=24))`` scales then windows; fitted on the
training rows only, it transforms later rows without leaking their statistics. Pipelines cannot
transform ``y``: :meth:`WindowTransformer.transform_xy` (and :func:`transform_xy` for a whole
pipeline) return windows and their targets from one plan, so they cannot get out of step.

Model selection across windowing: :class:`WindowRegressor` windows inside ``fit`` and ``predict`` and
aligns the targets itself, so ``GridSearchCV`` tunes ``timesteps`` with the regressor's parameters;
:class:`WindowSplit` makes time-series folds whose test part brings its own history;
:func:`window_scorer` scores each window against its own target. :class:`SeriesScaler` scales each
series of a long frame by itself and brings predictions back to original units by id.

One target convention: the target of a window (or of a lane's step ``t``) is ``horizon`` steps after
its last input step, ``horizon=1`` by default, for ``y`` aligned row by row with ``X`` as for
``targets="next"`` (:func:`~statebatch.make_windows`).

``set_output``: the output of these transformers is a 3-D numpy array, which has no pandas or polars
form; ``set_output(transform="pandas")`` therefore leaves it unchanged (it still configures the other
steps of a pipeline, and these transformers accept the DataFrames such steps return).
"""

from __future__ import annotations

from .model_selection import WindowRegressor, window_scorer
from .scaling import SeriesScaler
from .splits import WindowSplit, time_split
from .transformers import StatefulTransformer, WindowTransformer, transform_xy
from .validation import INAPPLICABLE_CHECKS, INAPPLICABLE_REGRESSOR_CHECKS, NotFittedError

__all__ = ["WindowTransformer", "StatefulTransformer", "WindowRegressor", "WindowSplit", "SeriesScaler", "window_scorer",
           "transform_xy", "time_split", "NotFittedError", "INAPPLICABLE_CHECKS",
           "INAPPLICABLE_REGRESSOR_CHECKS"]
