"""Test and benchmark scaffolding: throwaway project copies and `mlflow models serve`."""
