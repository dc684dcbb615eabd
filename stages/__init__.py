"""DVC stage scripts: each parses params.yaml, calls the aerialseg library and writes its outputs."""

import os

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) would bury the progress bars; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
