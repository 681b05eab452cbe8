"""Batch scoring of headline tables with a logged pyfunc model, in two engines.

- fakenews.scoring.models: which model (the champion, a URI, a local folder) and loading it;
- fakenews.scoring.tables: the input (CSV, TSV or Parquet; one file or a folder of part
  files) read in chunks, and the output written incrementally to a temporary path;
- fakenews.scoring.stream: the in-process engine, one chunk at a time (bounded memory);
- fakenews.scoring.spark: the same scoring through `mlflow.pyfunc.spark_udf` on Spark.

`python -m tools.score` is the command line over both.
"""
