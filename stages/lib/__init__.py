"""Concerns shared by every stage: params, errors, atomic I/O, schema checks, NLTK, MLflow."""
