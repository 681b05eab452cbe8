"""The serving SavedModel of a trained Keras model: one signature, input → fake-probability."""

from __future__ import annotations

from pathlib import Path

from fakenews.data.io import atomic_path


def save_serving_model(model, target: Path, input_spec) -> None:
    """A SavedModel with one signature: `input_spec` → {"fake_probability": [batch]}.

    It saves a plain module holding the weights and the one serving function, not the
    Keras model: Keras would trace every layer's call for its own object graph, which
    costs more than the training of a tiny model and is never loaded back. A BERT model
    also gets `classify` (packed word pieces → {"fake_probability"}) and, where its
    encoder has a bfloat16 pass, `classify_bfloat16`: the serving function without its
    tokenizer, for scorers that tokenize a whole table at once (fakenews.models.bert).
    """
    import tensorflow as tf

    module = tf.Module(name="headline_classifier")
    module.weights = list(model.variables)
    # BERT's tokenize/pack layers call functions of this hub object; it owns the vocab table.
    module.preprocessor = getattr(model, "bert_preprocessor", None)

    @tf.function(input_signature=[input_spec])
    def serve(inputs):
        return {"fake_probability": model(inputs, training=False)[:, 0]}

    module.serve = serve
    classifier = getattr(model, "encoder_classifier", None)
    if classifier is not None:
        module.classify = _classify_function(classifier, bfloat16=False)
        if classifier.has_bfloat16:
            module.classify_bfloat16 = _classify_function(classifier, bfloat16=True)
    with atomic_path(target) as tmp:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": serve})


def _classify_function(classifier, bfloat16: bool):
    import tensorflow as tf

    @tf.function(input_signature=[classifier.input_spec()])
    def classify(encoder_inputs):
        probability = classifier(encoder_inputs, training=False, bfloat16=bfloat16)
        return {"fake_probability": probability[:, 0]}

    return classify
