"""The training helpers both model families share: early stopping and compilation."""

from __future__ import annotations

import numpy as np
import pytest

from fakenews.errors import PipelineError
from fakenews.models.optimizer import compile_binary, learning_rate
from fakenews.training import early_stopping, set_seeds
from tests.support.params import section


@pytest.mark.parametrize(
    "monitor, mode", [("val_loss", "min"), ("val_auc", "max"), ("val_accuracy", "max")]
)
def test_early_stopping_direction_follows_the_monitor(monitor, mode):
    callback = early_stopping(
        section("train_lstm", early_stopping_monitor=monitor, early_stopping_patience=2)
    )
    assert callback.monitor == monitor and callback.patience == 2
    assert callback.monitor_op(1.0, 0.5) == (mode == "max")  # is 1.0 an improvement on 0.5?


def test_unknown_monitor_is_a_params_error():
    with pytest.raises(PipelineError, match="early_stopping_monitor.*'val_f1'"):
        early_stopping(
            section("train_lstm", early_stopping_monitor="val_f1", early_stopping_patience=1)
        )


def test_compiled_model_reports_validation_auc_each_epoch():
    import tensorflow as tf

    set_seeds(0)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, activation="sigmoid", input_shape=(3,))])
    compile_binary(model, 0.1)
    history = model.fit(
        x,
        y,
        validation_data=(x, y),
        epochs=3,
        verbose=0,
        callbacks=[
            early_stopping(
                section("train_bert", early_stopping_monitor="val_auc", early_stopping_patience=1)
            )
        ],
    )
    assert {"auc", "val_auc", "accuracy", "val_loss"} <= set(history.history)
    assert history.history["val_auc"][-1] > 0.9  # a separable problem is learnt


def test_linear_schedule_warms_up_then_decays_to_zero():
    params = section(
        "train_bert", learning_rate=1e-3, lr_schedule="linear", warmup_fraction=0.1, epochs=2
    )
    schedule = learning_rate(params, steps_per_epoch=50)  # 100 steps, 10 of warm-up
    rates = [float(schedule(step)) for step in range(100)]
    assert rates[0] == pytest.approx(1e-4)
    assert rates[9] == pytest.approx(1e-3)
    assert max(rates) == pytest.approx(1e-3)
    assert rates[10:] == sorted(rates[10:], reverse=True)
    assert rates[99] == pytest.approx(1e-3 / 90)


def test_constant_schedule_is_the_number_and_bad_settings_are_params_errors():
    assert learning_rate(section("train_bert", learning_rate=3e-5), steps_per_epoch=10) == 3e-5
    with pytest.raises(PipelineError, match="lr_schedule.*'cosine'"):
        learning_rate(section("train_bert", learning_rate=3e-5, lr_schedule="cosine", epochs=1), 10)
    for fraction in (-0.1, 1.0):
        with pytest.raises(PipelineError, match=f"warmup_fraction.*{fraction}"):
            learning_rate(
                section(
                    "train_bert",
                    learning_rate=3e-5,
                    lr_schedule="linear",
                    epochs=1,
                    warmup_fraction=fraction,
                ),
                10,
            )
