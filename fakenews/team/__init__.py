"""Team mode: a production-shaped MLflow tracking service on this machine (CLI: tools.team).

Three real services, each on 127.0.0.1 unless told otherwise, all under one git-ignored
folder (`team/` in the project by default):

    PostgreSQL     the backend store (runs, registry) and the users of MLflow's basic-auth
    SeaweedFS      an S3 server: bucket `mlflow` for artifacts, bucket `dvc` for a DVC remote
    MLflow         `mlflow server --app-name fakenews-team --serve-artifacts`: clients log in
                   with MLFLOW_TRACKING_USERNAME/PASSWORD and need no S3 credentials

Modules: `layout` (folders, secrets, state), `postgres`, `s3` and `s3_security`,
`mlflow_auth` and `mlflow_app` (the server), `accounts` (users, names, rights), `rotation`,
and `stack`, which starts, stops and reports on the three in order.
"""
