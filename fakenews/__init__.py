"""The pipeline's shared library, grouped by concern.

- fakenews.data: params, atomic I/O and table schema checks;
- fakenews.hub: offline TF Hub modules (checkpoint reading, BERT preprocessing and
  encoder, word vectors);
- fakenews.tracking: MLflow (the tracking server, stage runs and their lineage, the
  registry, the pyfunc models);
- fakenews.training, fakenews.nltk_setup, fakenews.processes, fakenews.logs,
  fakenews.errors.

DVC stages live in `stages/`, command-line tools in `tools/`.
"""
import os

from fakenews.logs import quiet_defaults

# TF Hub layers need Keras 2, chosen before TensorFlow is first imported anywhere.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
quiet_defaults()
