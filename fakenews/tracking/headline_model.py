"""The code MLflow runs to load a headline model (models from code, not a pickle).

Logged with every model by fakenews.tracking.pyfunc.log_headline_model; MLflow executes
this file at load time, with the model's code paths (stages/, fakenews/) importable.
"""
from mlflow.models import set_model

import fakenews  # noqa: F401  (sets the TensorFlow environment before anything imports it)
from fakenews.tracking.pyfunc import HeadlineModel

set_model(HeadlineModel())
