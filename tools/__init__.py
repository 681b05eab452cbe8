"""Command-line tools that are not DVC stages: score, promote, trace and the server manager."""

import fakenews  # noqa: F401  (sets the TensorFlow environment before anything imports it)
