"""The pipeline's shared library, grouped by concern.

- fakenews.data: typed params (`sections`) and their loading, atomic I/O, table schema
  checks, the split assignment;
- fakenews.text: headline cleaning; fakenews.vocabulary: the LSTM's word ids;
- fakenews.models: the LSTM and BERT families (inputs, network, training, prediction);
- fakenews.baselines: the TF-IDF and majority references; fakenews.evaluation: metrics,
  thresholds, bootstrap intervals and calibration;
- fakenews.training: the training loop and outputs both families share;
  fakenews.distribution: data-parallel strategies; fakenews.precision: bfloat16;
- fakenews.hub: offline TF Hub modules (checkpoint reading, BERT preprocessing and
  encoder, word vectors);
- fakenews.tracking: MLflow (the tracking server, stage runs and their lineage, model
  publishing, the registry and promotion, the pyfunc models);
- fakenews.scoring: batch scoring in-process and on Spark; fakenews.team: the team service;
- fakenews.processes, fakenews.logs, fakenews.cli, fakenews.errors.

DVC stages live in `stages/`, command-line tools in `tools/`; both import from here, and
nothing here imports them.
"""

import os

from fakenews.logs import quiet_defaults

# TF Hub layers need Keras 2: TF_USE_LEGACY_KERAS must be set before TensorFlow is first
# imported anywhere. Processes this one starts inherit it; those that start from another
# environment (Spark's Python workers, test subprocesses) take TENSORFLOW_ENV.
TENSORFLOW_ENV = {"TF_USE_LEGACY_KERAS": "1"}
for _name, _value in TENSORFLOW_ENV.items():
    os.environ.setdefault(_name, _value)
quiet_defaults()
