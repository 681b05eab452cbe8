"""Pipeline stages: one module per DVC stage, each with a pure core and a thin main()."""
import os

# TF Hub layers need Keras 2, chosen before TensorFlow is first imported anywhere.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
