"""The two neural families, each readable top to bottom in one file (`lstm`, `bert`): inputs,
network, training loop and prediction; `optimizer` is what both compile with, `export` the
serving SavedModel both are published as."""
