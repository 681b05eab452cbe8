"""Saving a SavedModel whose bytes depend only on the module, not on the process.

DVC hashes the output folder: byte-identical rebuilds keep downstream stages cached.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import tensorflow as tf
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from tensorflow.core.protobuf import fingerprint_pb2, saved_model_pb2
from tensorflow.python.saved_model import fingerprinting_utils

from fakenews.data.io import atomic_path

# Graph functions are named `<name>_<uid>` from a process-wide counter, e.g.
# `__inference_call_11256`, so the same module saved after other TF work gets other names.
_UID_SUFFIX = re.compile(r"^(?P<base>.*)_(?P<uid>\d+)$")


def save_reproducibly(root: Any, out_dir: Path | str) -> None:
    """Save atomically, with content that depends only on the module, not on the process.

    DVC hashes the output folder: byte-identical rebuilds keep downstream stages cached.
    """
    with atomic_path(out_dir) as tmp:
        tf.saved_model.save(root, str(tmp))
        _number_functions_by_rank(tmp / "saved_model.pb")
        _rewrite_fingerprint(tmp)


def _number_functions_by_rank(saved_model_file: Path) -> None:
    """Replace each function's uid by its rank among the module's uids, and sort the library.

    Tracing order is fixed, so the ranks are the same in every build even though the
    uids are not. Every string field equal to an old name is a reference to it.
    """
    saved_model = saved_model_pb2.SavedModel.FromString(saved_model_file.read_bytes())
    for meta_graph in saved_model.meta_graphs:
        library = meta_graph.graph_def.library
        numbered = sorted(
            (int(match["uid"]), match["base"], function.signature.name)
            for function in library.function
            if (match := _UID_SUFFIX.match(function.signature.name))
        )
        renames = {name: f"{base}_{rank}" for rank, (_, base, name) in enumerate(numbered)}
        _rename_strings(meta_graph, renames)
        functions = sorted(library.function, key=lambda function: function.signature.name)
        library.ClearField("function")
        library.function.extend(functions)
    saved_model_file.write_bytes(saved_model.SerializeToString(deterministic=True))


def _rename_strings(message: Message, renames: dict[str, str]) -> None:
    """Apply `renames` to every string field, map key and map value inside `message`."""
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            _rename_map(value, field.message_type.fields_by_name["value"], renames)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value if field.is_repeated else [value]:
                _rename_strings(item, renames)
        elif field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                value[:] = [renames.get(item, item) for item in value]
            elif value in renames:
                setattr(message, field.name, renames[value])


def _rename_map(entries: Any, value_field: FieldDescriptor, renames: dict[str, str]) -> None:
    def renamed(item: Any) -> Any:
        return renames.get(item, item) if isinstance(item, str) else item

    if value_field.type == FieldDescriptor.TYPE_MESSAGE:
        items = []
        for key, value in entries.items():
            _rename_strings(value, renames)
            copy = type(value)()
            copy.CopyFrom(value)
            items.append((renamed(key), copy))
        entries.clear()
        for key, value in items:
            entries[key].CopyFrom(value)
    else:
        items = [(renamed(key), renamed(value)) for key, value in entries.items()]
        entries.clear()
        entries.update(items)


def _rewrite_fingerprint(saved_model_dir: Path) -> None:
    """Recompute fingerprint.pb for the renamed graph, minus its random per-save uuid."""
    fingerprinting_utils.write_fingerprint(str(saved_model_dir))
    fingerprint_file = saved_model_dir / "fingerprint.pb"
    fingerprint = fingerprint_pb2.FingerprintDef.FromString(fingerprint_file.read_bytes())
    fingerprint.ClearField("uuid")
    fingerprint_file.write_bytes(fingerprint.SerializeToString(deterministic=True))
