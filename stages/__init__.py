"""Pipeline stages: one module per DVC stage, each with a pure core and a thin main()."""

import fakenews  # noqa: F401  (sets the TensorFlow environment before anything imports it)
