import os

# Quiet TensorFlow's C++ logging; must be set before tensorflow is first imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", deadline=None, max_examples=60, print_blob=True)
settings.load_profile("ci")
