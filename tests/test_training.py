"""The training helpers both model stages share: early stopping and compilation."""
from __future__ import annotations

import numpy as np
import pytest

from stages.lib.errors import PipelineError
from stages.lib.training import compile_binary, early_stopping, set_seeds


@pytest.mark.parametrize("monitor, mode", [("val_loss", "min"), ("val_auc", "max"),
                                           ("val_accuracy", "max")])
def test_early_stopping_direction_follows_the_monitor(monitor, mode):
    callback = early_stopping({"early_stopping_monitor": monitor, "early_stopping_patience": 2})
    assert callback.monitor == monitor and callback.patience == 2
    assert callback.monitor_op(1.0, 0.5) == (mode == "max")  # is 1.0 an improvement on 0.5?


def test_unknown_monitor_is_a_params_error():
    with pytest.raises(PipelineError, match="early_stopping_monitor.*'val_f1'"):
        early_stopping({"early_stopping_monitor": "val_f1", "early_stopping_patience": 1})


def test_compiled_model_reports_validation_auc_each_epoch():
    import tensorflow as tf

    set_seeds(0)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, activation="sigmoid", input_shape=(3,))])
    compile_binary(model, 0.1)
    history = model.fit(x, y, validation_data=(x, y), epochs=3, verbose=0,
                        callbacks=[early_stopping({"early_stopping_monitor": "val_auc",
                                                   "early_stopping_patience": 1})])
    assert {"auc", "val_auc", "accuracy", "val_loss"} <= set(history.history)
    assert history.history["val_auc"][-1] > 0.9  # a separable problem is learnt
