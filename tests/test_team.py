"""Team mode against the real services: PostgreSQL, SeaweedFS S3 and MLflow with basic-auth,
started on free loopback ports by the code behind `make team-up`.

One project copy runs the tiny pipeline through them with `make repro` as the admin; the
read-only user then scores with and serves the champion, and is refused (403) when it
writes. Two queued experiments run at once, the copy's DVC outputs go to the S3 remote
and come back in a fresh clone, and at the end nothing the tests started is left running.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests
import yaml
from mlflow.tracking import MlflowClient

from fakenews.errors import PipelineError
from fakenews.processes import free_port
from fakenews.team import stack
from fakenews.team.layout import ADMIN, READER, load_secrets, read_env_file
from fakenews.team.s3 import DVC_BUCKET, MLFLOW_BUCKET
from tests.support.commands import ran_stages, run, subprocess_env
from tests.support.serving import served_model
from tests.support.team import client_env, processes_under, team_processes, team_service
from tests.support.tiny import TINY_STAGE_PARAMS

pytestmark = pytest.mark.slow

MODEL = "fake-news-classifier"
HEADLINES = (
    'title\nSenate passes the annual budget bill\n"Celebrity secretly married to alien, '
    'insiders say"\n'
)


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """The whole service in a fresh folder, stopped at the end with nothing left behind."""
    with team_service(tmp_path_factory.mktemp("team")) as started:
        yield started


@pytest.fixture(scope="module")
def team_repo(team, project_copy, tiny_repro):
    """A project copy with the tiny profile, reproduced by `make repro` against the team
    service and committed. It waits for the run's tiny repro: ingest → split, run there
    with the same code, data and params, are restored from DVC's shared run cache."""
    repo = project_copy("team")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in TINY_STAGE_PARAMS.items():
        params[section].update(values)
    # Params of their own for every trained family: DVC's run cache, shared with copies that
    # logged to other servers, must not restore a model whose MLflow run lives elsewhere.
    params["train_lstm"]["seed"] = params["train_bert"]["seed"] = 7
    params["train_tfidf"]["logreg_c"] = [0.5, 2.0]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    result = run(["make", "repro"], repo, client_env(team))
    run(["git", "add", "-A"], repo)
    run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "repro"],
        repo,
    )
    return repo, result


def test_logins_permissions_and_secrets(team, monkeypatch):
    from fakenews.tracking.runs import start_run

    search = f"{team.uri}/api/2.0/mlflow/experiments/search"
    reader_env = read_env_file(team.paths.client_env(READER))
    secrets = load_secrets(team.paths)
    assert requests.get(search, params={"max_results": 1}, timeout=30).status_code == 401
    assert (
        requests.get(
            search, params={"max_results": 1}, auth=(ADMIN, "not-the-password"), timeout=30
        ).status_code
        == 401
    )
    assert (
        requests.get(
            search,
            params={"max_results": 1},
            timeout=30,
            auth=(READER, reader_env["MLFLOW_TRACKING_PASSWORD"]),
        ).status_code
        == 200
    )
    # S3: anonymous requests and DVC's identity are kept out of MLflow's bucket
    assert requests.get(f"{team.s3.endpoint}/{MLFLOW_BUCKET}", timeout=30).status_code == 403
    with pytest.raises(Exception, match="AccessDenied"):
        team.s3.client(secrets, "TEAM_DVC").list_objects_v2(Bucket=MLFLOW_BUCKET)

    # the pipeline's own run start: one line naming the URI and the credential at fault.
    # The admin creates the experiment: only admins (and `creators`) may.
    admin_password = read_env_file(team.paths.client_env(ADMIN))["MLFLOW_TRACKING_PASSWORD"]
    created = requests.post(
        f"{team.uri}/api/2.0/mlflow/experiments/create",
        timeout=30,
        json={"name": "permissions"},
        auth=(ADMIN, admin_password),
    )
    experiment_id = created.json()["experiment_id"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team.uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "permissions")
    cases = {
        (None, None): [
            "HTTP 401",
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD are not set",
        ],
        (ADMIN, "not-the-password"): [
            "HTTP 401",
            "user 'admin'",
            "MLFLOW_TRACKING_PASSWORD is not",
        ],
        (READER, reader_env["MLFLOW_TRACKING_PASSWORD"]): [
            "HTTP 403",
            "user 'reader'",
            "/api/2.0/mlflow/",
        ],
    }
    for (user, password), fragments in cases.items():
        for name, value in (("USERNAME", user), ("PASSWORD", password)):
            if value is None:
                monkeypatch.delenv(f"MLFLOW_TRACKING_{name}", raising=False)
            else:
                monkeypatch.setenv(f"MLFLOW_TRACKING_{name}", value)
        with pytest.raises(PipelineError) as refused:
            with start_run("probe", {}):
                pass
        message = str(refused.value)
        assert team.uri in message and "\n" not in message
        assert all(fragment in message for fragment in fragments), message
        assert not any(secret in message for secret in [*secrets.all(), "not-the-password"])
    runs = requests.post(
        f"{team.uri}/api/2.0/mlflow/runs/search",
        auth=(ADMIN, admin_password),
        json={"experiment_ids": [experiment_id]},
        timeout=30,
    ).json()
    assert not runs.get("runs"), "a refused client left a run behind"

    # every listener of the service is one of its recorded ports, on loopback
    ours = {proc.pid for proc in team_processes(team)}
    listening = {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.pid in ours
    }
    assert listening == {("127.0.0.1", port) for port in team.ports()}

    # no secret on any command line, in a log, the state or the auth config
    for proc in psutil.process_iter():
        try:
            cmdline = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        assert not any(secret in cmdline for secret in secrets.all()), proc.pid
    for path in [*team.paths.root.glob("logs/*"), team.paths.state_file, team.mlflow.auth_config]:
        text = path.read_text(errors="replace")
        assert not any(secret in text for secret in secrets.all()), path
    assert oct(team.paths.secrets_dir.stat().st_mode & 0o777) == "0o700"
    assert {oct(p.stat().st_mode & 0o777) for p in team.paths.secrets_dir.iterdir()} == {"0o600"}


def test_rotating_a_password_locks_the_old_one_out(team):
    old = read_env_file(team.paths.client_env(READER))["MLFLOW_TRACKING_PASSWORD"]
    run(
        [sys.executable, "-m", "tools.team", "rotate", READER, "--dir", str(team.paths.root)],
        Path(__file__).parents[1],
    )
    new = read_env_file(team.paths.client_env(READER))["MLFLOW_TRACKING_PASSWORD"]
    assert new != old and load_secrets(team.paths)["TEAM_READER_PASSWORD"] == new
    assert not team.mlflow.accounts.can_log_in(READER, old)
    assert team.mlflow.accounts.can_log_in(READER, new)


def logged_in_client(team: stack.Team, monkeypatch) -> MlflowClient:
    """An MlflowClient of this process, logged in as the admin for the test's duration."""
    for key, value in read_env_file(team.paths.client_env(ADMIN)).items():
        monkeypatch.setenv(key, value)
    return MlflowClient(team.uri)


def test_tiny_pipeline_logs_to_postgres_and_s3_and_the_reader_serves_the_champion(
    team, team_repo, monkeypatch
):
    import psycopg

    repo, result = team_repo
    ran = ran_stages(result.stdout)  # upstream of training was restored from the run cache
    assert {"train_lstm", "train_bert", "train_tfidf", "blend", "evaluate"} <= set(ran)
    assert ran[-1] == "evaluate"
    admin = logged_in_client(team, monkeypatch)
    experiment = admin.get_experiment_by_name("fake-news")
    runs = admin.search_runs([experiment.experiment_id])
    champion = admin.get_model_version_by_alias(MODEL, "champion")
    stages = sorted(r.data.tags["dvc.stage"] for r in runs)
    # one training run a trained model, one evaluation run a model or reference
    assert stages == ["blend"] + ["evaluate"] * 6 + ["train_bert", "train_lstm", "train_tfidf"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    secrets = load_secrets(team.paths)
    tags = " ".join(value for r in runs for value in r.data.tags.values())
    assert not any(secret in tags for secret in secrets.all())
    assert json.loads((repo / "metrics/promotion.json").read_text())["decision"]["version"]

    # the runs are rows in PostgreSQL, the models objects in S3
    with psycopg.connect(
        host="127.0.0.1",
        port=team.postgres.port,
        dbname="mlflow",
        user="mlflow",
        password=secrets["TEAM_DB_PASSWORD"],
    ) as db:
        stored = {row[0] for row in db.execute("SELECT run_uuid FROM runs")}
    assert {r.info.run_id for r in runs} <= stored
    keys = [
        o["Key"]
        for page in team.s3.client(secrets, "TEAM_S3")
        .get_paginator("list_objects_v2")
        .paginate(Bucket=MLFLOW_BUCKET)
        for o in page.get("Contents", [])
    ]
    bert = json.loads((repo / "models/bert/mlflow_run.json").read_text())
    model_id = bert["model_uri"].split("/")[-1]
    assert any(model_id in key and key.endswith("saved_model.pb") for key in keys), keys[:20]

    # the read-only user scores with the champion and serves it, at the same time
    reader = client_env(team, READER)
    (repo / "headlines.csv").write_text(HEADLINES)
    scoring = subprocess.Popen(
        [sys.executable, "-m", "tools.score", "--input", "headlines.csv", "--output", "scored.csv"],
        cwd=repo,
        env=reader,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with served_model(f"models:/{MODEL}@champion", reader) as url:
        served = requests.post(
            f"{url}/invocations",
            timeout=60,
            json={"dataframe_records": [{"title": "Senate passes the annual budget bill"}]},
        )
    out, err = scoring.communicate(timeout=300)
    assert scoring.returncode == 0, err
    assert f"(version {champion.version})" in out
    assert len(served.json()["predictions"]) == 1
    assert (repo / "scored.csv").read_text().count("\n") == 3

    # ... but may not move the alias: one line, exit 2, the champion unchanged
    other = "1" if champion.version == "2" else "2"  # evaluate registered two versions
    moved = run(
        [
            sys.executable,
            "-m",
            "tools.promote",
            "promote",
            "--version",
            other,
            "--force",
            "--reason",
            "reader tries",
        ],
        repo,
        reader,
        check=False,
    )
    errors = [line for line in moved.stderr.splitlines() if line.startswith("error: ")]
    assert moved.returncode == 2 and len(errors) == 1, moved.stderr
    # refused at its first write: taking the promotion lock, a registered model only admins
    # (and `creators`) may create on the team server
    assert (
        "HTTP 403" in errors[0]
        and "registered-models/create" in errors[0]
        and team.uri in errors[0]
    )
    assert admin.get_model_version_by_alias(MODEL, "champion").version == champion.version


def test_dvc_push_to_the_s3_remote_then_pull_into_a_fresh_clone_scores_offline(
    team, team_repo, tmp_path
):
    repo, _ = team_repo
    s3_env = {**subprocess_env(), **read_env_file(team.paths.client_env("dvc-s3"))}
    run(["dvc", "remote", "add", "-d", "team", f"s3://{DVC_BUCKET}/cache"], repo)
    run(["dvc", "remote", "modify", "--local", "team", "endpointurl", team.s3.endpoint], repo)
    run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-qam",
            "DVC remote",
        ],
        repo,
    )
    run(["dvc", "push"], repo, s3_env)
    objects = team.s3.client(load_secrets(team.paths)).list_objects_v2(Bucket=DVC_BUCKET)
    assert objects["KeyCount"] > 0

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    run(["dvc", "remote", "modify", "--local", "team", "endpointurl", team.s3.endpoint], clone)
    run(["dvc", "cache", "dir", "--local", str(tmp_path / "cache")], clone)  # not the shared one
    run(["dvc", "pull"], clone, s3_env)
    for output in (
        "data/split/assignment.parquet",
        "data/hub/bert_encoder",
        "models/bert/MLmodel",
        "models/lstm/MLmodel",
    ):
        assert (clone / output).exists(), output
    assert "up to date" in run(["dvc", "status"], clone, s3_env).stdout

    # no server at all: the URI names a closed port, and there are no credentials
    (clone / "headlines.csv").write_text(HEADLINES)
    offline = {**subprocess_env(), "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    scored = run(
        [
            sys.executable,
            "-m",
            "tools.score",
            "--input",
            "headlines.csv",
            "--output",
            "scored.csv",
            "--model",
            "models/bert",
        ],
        clone,
        offline,
    )
    assert "2 titles scored with models/bert" in scored.stdout
    assert (clone / "scored.csv").read_text().count("\n") == 3


def queue_states(
    repo: Path, env: dict[str, str], names: tuple[str, ...], timeout: float = 600
) -> dict[str, str]:
    """The final `dvc queue status` of each named experiment, once none is queued or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], repo, env).stdout
        rows = [line.split() for line in status.splitlines() if line.strip()]
        states = {row[1]: row[-1] for row in rows if len(row) >= 4 and row[1] in names}
        if len(states) == len(names) and set(states.values()) <= {"Success", "Failed"}:
            return states
        time.sleep(2)
    raise AssertionError(f"the queue did not finish within {timeout:.0f}s: {states}")


def worker_spans(repo: Path) -> list[tuple[str, str]]:
    """(received, succeeded) times of each experiment task, from the queue workers' logs."""
    spans = []
    for log in sorted((repo / ".dvc/tmp/exps/celery").glob("dvc-exp-worker-*.out")):
        times = {}
        for line in log.read_text(errors="replace").splitlines():
            if "tasks.run_exp[" in line and line.startswith("["):
                times[line.split()[-1] if line.endswith("received") else "succeeded"] = line[1:24]
        if {"received", "succeeded"} <= set(times):
            spans.append((times["received"], times["succeeded"]))
    return spans


def stop_queue(repo: Path, env: dict[str, str]) -> list[int]:
    """`dvc queue stop`, then SIGKILL for a worker that still has not exited after 30 s
    (DVC's idle monitor can ask a busy worker to stop, and then it never does); returns
    the PIDs that had to be killed."""
    subprocess.run(["dvc", "queue", "stop", "--kill"], cwd=repo, env=env, capture_output=True)
    deadline = time.monotonic() + 30
    while processes_under(repo) and time.monotonic() < deadline:
        time.sleep(0.5)
    stuck = processes_under(repo)
    for proc in stuck:
        proc.kill()
    psutil.wait_procs(stuck, timeout=10)
    return [proc.pid for proc in stuck]


def test_two_queued_experiments_run_at_once_and_lose_nothing(team, team_repo, monkeypatch):
    repo, _ = team_repo
    env = client_env(team)
    client = logged_in_client(team, monkeypatch)
    experiment_id = client.get_experiment_by_name("fake-news").experiment_id
    before = len(client.search_runs([experiment_id]))
    versions = len(client.search_model_versions(f"name='{MODEL}'"))
    names = ("team-a", "team-b")
    for name, resamples in zip(names, (20, 30), strict=False):
        run(
            [
                "dvc",
                "exp",
                "run",
                "--queue",
                "-n",
                name,
                "-S",
                f"evaluate.bootstrap_resamples={resamples}",
            ],
            repo,
            env,
        )
    # `dvc queue start` rather than `dvc exp run --run-all -j 2`, which can wait forever on
    # a worker that never exits (README, Parallel experiments)
    run(["dvc", "queue", "start", "-j", "2"], repo, env)
    try:
        states = queue_states(repo, env, names)
    finally:
        stop_queue(repo, env)
    assert not processes_under(repo), "queue workers outlived the test"
    assert states == {name: "Success" for name in names}
    (a_start, a_end), (b_start, b_end) = worker_spans(repo)  # one task per worker
    assert a_start < b_end and b_start < a_end, "the two experiments did not run at the same time"
    by_exp = {
        name: client.search_runs([experiment_id], f"tags.`dvc.exp.name` = '{name}'")
        for name in names
    }
    for name, runs in by_exp.items():
        # evaluate reran alone: one run per trained model and reference
        assert len(runs) == 6 and {r.info.status for r in runs} == {"FINISHED"}, name
    assert len(client.search_runs([experiment_id])) == before + 12
    # experiments stay experiments: nothing registered (evaluate.register_experiments is false)
    assert len(client.search_model_versions(f"name='{MODEL}'")) == versions
