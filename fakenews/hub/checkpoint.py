"""Reading a Hugging Face BERT checkpoint (config.json, model.safetensors) without PyTorch.

Every tensor the encoder needs is checked for presence and shape here, so a wrong or
truncated checkpoint fails with the file named rather than deep inside TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file

from fakenews.errors import PipelineError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
VOCAB_FILE = "vocab.txt"

# Hugging Face BertForPreTraining & co. prefix the BertModel tensors with this.
_HF_MODEL_PREFIX = "bert."
_REQUIRED_CONFIG_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "layer_norm_eps",
    "max_position_embeddings",
    "type_vocab_size",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
)


def load_bert_checkpoint(folder: Path | str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read config.json and model.safetensors of a HF BertModel, without PyTorch.

    Every tensor the encoder needs is checked for presence and shape here, so a wrong
    or truncated checkpoint fails with the file named rather than deep inside TF.
    """
    folder = Path(folder)
    config = _read_config(folder / CONFIG_FILE)
    weights_path = folder / WEIGHTS_FILE
    if not weights_path.is_file():
        raise PipelineError(f"{weights_path}: weights file not found")
    try:
        raw_weights = load_file(str(weights_path))
    except (SafetensorError, OSError) as err:
        raise PipelineError(f"{weights_path}: not a readable safetensors file: {err}") from None
    weights = {name.removeprefix(_HF_MODEL_PREFIX): array for name, array in raw_weights.items()}
    _check_weights(weights, _expected_shapes(config), weights_path)
    return config, weights


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise PipelineError(f"{path}: BERT config file not found")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise PipelineError(f"{path}: not valid JSON: {err}") from None
    missing = [key for key in _REQUIRED_CONFIG_KEYS if key not in config]
    if missing:
        raise PipelineError(f"{path}: missing BERT setting(s) {', '.join(missing)}")
    # Only the exact (erf) GELU of the original BERT is implemented below.
    if config["hidden_act"] != "gelu":
        raise PipelineError(
            f"{path}: hidden_act {config['hidden_act']!r} is not supported, only 'gelu'"
        )
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise PipelineError(f"{path}: only absolute position embeddings are supported")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise PipelineError(f"{path}: hidden_size is not a multiple of num_attention_heads")
    return config


def _expected_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """HF tensor name -> shape for every tensor the encoder uses (Linear weights are [out, in])."""
    hidden, inner = config["hidden_size"], config["intermediate_size"]
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (config["vocab_size"], hidden),
        "embeddings.position_embeddings.weight": (config["max_position_embeddings"], hidden),
        "embeddings.token_type_embeddings.weight": (config["type_vocab_size"], hidden),
        "embeddings.LayerNorm.weight": (hidden,),
        "embeddings.LayerNorm.bias": (hidden,),
        "pooler.dense.weight": (hidden, hidden),
        "pooler.dense.bias": (hidden,),
    }
    for index in range(config["num_hidden_layers"]):
        layer = f"encoder.layer.{index}."
        dense_shapes = {
            "attention.self.query": (hidden, hidden),
            "attention.self.key": (hidden, hidden),
            "attention.self.value": (hidden, hidden),
            "attention.output.dense": (hidden, hidden),
            "intermediate.dense": (inner, hidden),
            "output.dense": (hidden, inner),
        }
        for dense, shape in dense_shapes.items():
            shapes[f"{layer}{dense}.weight"] = shape
            shapes[f"{layer}{dense}.bias"] = shape[:1]
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[f"{layer}{norm}.weight"] = (hidden,)
            shapes[f"{layer}{norm}.bias"] = (hidden,)
    return shapes


def _check_weights(
    weights: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]], source: Path
) -> None:
    missing = [name for name in shapes if name not in weights]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        shown = ", ".join(missing[:5]) + more
        raise PipelineError(f"{source}: missing tensor(s) {shown}; is this a BERT checkpoint?")
    wrong = [
        f"{name} is {weights[name].shape}, expected {shape}"
        for name, shape in shapes.items()
        if weights[name].shape != shape
    ]
    if wrong:
        raise PipelineError(
            f"{source}: tensor shapes do not match config.json: {'; '.join(wrong[:5])}"
        )
