"""The file MLflow executes to load a headline model (models from code, not a pickle).

Logged with every model by fakenews.tracking.pyfunc.log_headline_model; at load time MLflow
runs it with the model's code path (fakenews/) importable, and it hands MLflow the
HeadlineModel that fakenews.tracking.pyfunc defines.
"""

from mlflow.models import set_model

import fakenews  # noqa: F401  (sets the TensorFlow environment before anything imports it)
from fakenews.tracking.pyfunc import HeadlineModel

set_model(HeadlineModel())
