import os

# Quiet TensorFlow's C++ logging; must be set before tensorflow is first imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

from hypothesis import settings  # noqa: E402

# CI (`.ci/run` sets CI=1) replays a fixed set of examples, so a red run is reproducible and not a draw;
# local runs explore new examples every time (HYPOTHESIS_PROFILE=explore for ten times as many).
settings.register_profile("ci", deadline=None, max_examples=60, print_blob=True, derandomize=True)
settings.register_profile("dev", deadline=None, max_examples=60, print_blob=True)
settings.register_profile("explore", deadline=None, max_examples=600, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
