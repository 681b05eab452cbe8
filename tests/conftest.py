"""Shared fixtures: the real offline data, one tracking server, project copies sharing a
DVC cache, and one tiny pipeline run that every test reading its outputs reuses.

Each of these is built once per test run, whether one pytest process or two xdist workers
run the tests (`make test`): tests/support/shared.py holds the mechanics."""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from fakenews.data.params import load_params
from tests.support.sandbox import TINY_PROFILE
from tests.support.shared import (
    is_worker,
    once,
    record_process,
    shared_root,
    stop_recorded,
    wait_for_file,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"
SHARED_DATA = SHARED / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"{SHARED_DATA} is missing: the tests read the offline data in place")
    return SHARED_DATA


@pytest.fixture(scope="session")
def nltk_dir(shared_data: Path) -> Path:
    return shared_data / "nltk_data"


def subprocess_env() -> dict[str, str]:
    """The test interpreter's venv first on PATH, so `python` in dvc.yaml is ours."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["TF_USE_LEGACY_KERAS"] = "1"
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def run(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True,
        timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env or subprocess_env(), capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


def commit_all(repo: Path, message: str) -> str:
    """`git add -A` and commit in a project copy; returns the new HEAD."""
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com",
         "commit", "-q", "-m", message], repo)
    return run(["git", "rev-parse", "HEAD"], repo).stdout.strip()


def assert_serves_as_trained(params: dict, run, record: dict) -> None:
    """No train/serve skew: the logged pyfunc, loaded back and given the raw validation
    titles, reproduces the validation metrics its training stage logged."""
    import mlflow

    from fakenews.data.splits import load_splits
    from fakenews.training import binary_metrics

    val = load_splits(params["paths"]["split"], params["paths"]["ingested"], ["id", "title"])["val"]
    served = mlflow.pyfunc.load_model(record["model_uri"]).predict(val[["title"]])
    served_metrics = binary_metrics(val["label"], served["fake_probability"], record["threshold"])
    logged = {key.removeprefix("val."): value for key, value in run.data.metrics.items()
              if key.startswith("val.")}
    assert logged.keys() == {*served_metrics, "threshold"}
    for key, value in served_metrics.items():
        assert value == pytest.approx(logged[key], abs=1e-6, nan_ok=True), key
    assert (served["predicted_label"] == "fake").mean() == pytest.approx(
        (served["fake_probability"] >= logged["threshold"]).mean())


def ran_stages(output: str) -> list[str]:
    """Stage names that `dvc repro`/`dvc exp run` reported running."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


# --- the tiny pipeline: one real `dvc exp run` per session, reused ----------------------

# `dvc repro` tests apply the tiny profile with `dvc exp run -S`; in-process tests read a
# params file with the same values. The offline data at absolute paths: queued experiments
# run in a temporary workspace where `../shared` does not resolve, and copies that share
# DVC's run cache must agree on every param to restore each other's stages.
TINY_STAGE_PARAMS = {
    **TINY_PROFILE,
    "ingest": {**TINY_PROFILE["ingest"], "path": str(SHARED_DATA / "fakenewsnet")},
    "clean": {**TINY_PROFILE.get("clean", {}), "nltk_data": str(SHARED_DATA / "nltk_data")},
    "embed": {**TINY_PROFILE["embed"], "bert_checkpoint": str(SHARED_DATA / "minilm_l6_h384")},
}
TINY_REPRO_EXPERIMENT = "dvc-repro-test"
_WORKER_NICENESS = 5
TINY_REPRO_MODEL = "dvc-repro"
DATA_PATHS = ("ingested", "ingest_report", "cleaned", "hub_dir", "embedded_dir", "embed_metrics",
              "split", "split_metrics")


def tiny_flags() -> list[str]:
    """The tiny profile as `dvc exp run -S key=value` arguments."""
    return [arg for section, values in TINY_STAGE_PARAMS.items() for key, value in values.items()
            for arg in ("-S", f"{section}.{key}={value}")]


@pytest.fixture(scope="session")
def shared(tmp_path_factory) -> Path:
    """The folder all xdist workers of this run share (tests/support/shared.py)."""
    return shared_root(tmp_path_factory.getbasetemp())


def pytest_sessionfinish(session) -> None:
    """The controller (or the lone pytest process) stops what the workers left running."""
    if not is_worker():
        stop_recorded(shared_root(session.config._tmp_path_factory.getbasetemp()))


@pytest.fixture(scope="session")
def tracking_server(shared) -> str:
    """A real `mlflow server` on a free loopback port, one for the whole run."""
    from fakenews.processes import free_port
    from fakenews.tracking.server import start_server

    def start(folder: Path) -> None:
        handle = start_server(folder, free_port(), say=lambda _: None)
        record_process(shared, handle.pid, "the session's MLflow server")
        (folder / "uri").write_text(handle.uri)

    return (once(shared, "mlflow", start) / "uri").read_text()


@pytest.fixture()
def tracking_uri(tracking_server, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    mlflow.set_tracking_uri(tracking_server)  # process-global: undo what earlier tests set
    return tracking_server


def _dvc_cache(shared: Path) -> Path:
    return once(shared, "dvc-cache", lambda folder: (folder / "cache").mkdir()) / "cache"


@pytest.fixture(scope="session")
def project_copy(tmp_path_factory, shared):
    """A factory of throwaway git + DVC copies of the project, `../shared` linked beside
    each. They share one DVC cache, so a stage that ran with the same code, data and params
    in one copy is restored from DVC's run cache in the next instead of rerun."""
    from tests.support.sandbox import copy_project

    cache = _dvc_cache(shared)
    return lambda name: copy_project(tmp_path_factory.mktemp(name), dvc_cache=cache)


@dataclass(frozen=True)
class TinyRepro:
    repo: Path  # the copy, which later tests may change
    env: dict[str, str]
    result: subprocess.CompletedProcess  # the `dvc repro` that reproduced all seven stages
    outputs: Path  # data/, models/, metrics/ and params.yaml as that run left them


def _tiny_repro_env(tracking_server: str) -> dict[str, str]:
    return {**subprocess_env(), "MLFLOW_TRACKING_URI": tracking_server,
            "MLFLOW_EXPERIMENT_NAME": TINY_REPRO_EXPERIMENT}


@pytest.fixture(scope="session", autouse=True)
def _tiny_repro_started(request, shared) -> Path | None:
    """Starts the run's tiny repro at the first test, in the background, when any collected
    test needs it: the unit tests, sorted first, run while it works."""
    if not any("tiny_repro" in item.fixturenames for item in request.session.items):
        return None
    from fakenews.processes import spawn_detached
    from tests.support.sandbox import copy_project

    env = _tiny_repro_env(request.getfixturevalue("tracking_server"))

    def start(folder: Path) -> None:
        repo = copy_project(folder / "copy", dvc_cache=_dvc_cache(shared))
        # The tiny profile committed, as a team commits what it runs: `dvc repro` of a clean
        # checkout registers and promotes (an experiment would not), and its runs are not
        # dirty. Its own registered model, so the in-process tests sharing the server start clean.
        params = load_params(repo / "params.yaml")
        for section, values in {**TINY_STAGE_PARAMS, "evaluate": {
                **TINY_STAGE_PARAMS["evaluate"], "registered_model": TINY_REPRO_MODEL}}.items():
            params[section].update(values)
        write_params(repo / "params.yaml", params)
        commit_all(repo, "tiny profile")
        # The exit status appears by rename once the output is complete. Detached, so the
        # worker that started it may finish first; the controller stops it if still running.
        log, status = shlex.quote(str(folder / "repro.log")), shlex.quote(str(folder / "rc"))
        script = f"dvc repro > {log} 2>&1; echo $? > {status}.tmp && mv {status}.tmp {status}"
        pid = spawn_detached(["bash", "-c", script], folder / "spawn.log", env, cwd=repo)
        record_process(shared, pid, "the session's tiny dvc repro")

    folder = once(shared, "tiny-repro", start)
    # The tiny repro is the run's critical path: half the slow tests wait for it. This
    # worker and everything it starts from now on yield the CPU to it (and to the tracking
    # server, started before); the repro keeps the priority it was started with.
    os.nice(_WORKER_NICENESS)
    return folder


@pytest.fixture(scope="session")
def tiny_repro(_tiny_repro_started, shared, tracking_server) -> TinyRepro:
    """All seven stages on the tiny profile under a real `dvc repro`, once per run.

    Its outputs are copied aside at once, so tests that read them are not affected by the
    tests that go on to change the copy.
    """
    folder = _tiny_repro_started
    status = int(wait_for_file(folder / "rc", 900, "the tiny dvc repro"))
    output = (folder / "repro.log").read_text(errors="replace")
    command = ["dvc", "repro"]
    if status != 0:
        raise AssertionError(f"dvc repro exited {status}:\n{output}")
    repo = folder / "copy" / "repo"

    def keep(outputs: Path) -> None:
        for name in ("data", "models", "metrics"):
            shutil.copytree(repo / name, outputs / name)
        shutil.copy2(repo / "params.yaml", outputs / "params.yaml")

    outputs = once(shared, "tiny-outputs", keep)
    return TinyRepro(repo, _tiny_repro_env(tracking_server),
                     subprocess.CompletedProcess(command, 0, output, ""), outputs)


def tiny_params(outputs: Path, workdir: Path, shared_data: Path) -> dict:
    """params.yaml with the tiny profile, reading the upstream data of the session's tiny
    repro (`outputs`) and writing models and metrics into `workdir`."""
    params = load_params(PROJECT_ROOT / "params.yaml")
    params["paths"] = {key: str((outputs if key in DATA_PATHS else workdir) / value)
                       for key, value in params["paths"].items()}
    params["embed"]["wordvec_handle"] = str(outputs / params["embed"]["wordvec_handle"])
    for key in ("preprocess_handle", "encoder_handle"):
        params["train_bert"][key] = str(outputs / params["train_bert"][key])
    for section, values in TINY_STAGE_PARAMS.items():
        params[section].update(values)
    return params


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_repro, shared, shared_data) -> Path:
    """A params file for in-process stage runs: ingest → split as the run's tiny repro
    left them (60 real headlines), models and metrics in a folder of its own."""
    def write(workdir: Path) -> None:
        write_params(workdir / "params.yaml", tiny_params(tiny_repro.outputs, workdir, shared_data))

    return once(shared, "tiny", write) / "params.yaml"


@pytest.fixture(scope="session")
def tiny_trained(tiny_pipeline, shared, tracking_server) -> Path:
    """Both models trained once more on the tiny profile, in-process, logged to the run's
    server. With the same inputs and params as the tiny repro's training (in its own
    processes), the two must agree: test_determinism compares them."""
    from stages import train_bert, train_lstm

    def train(_: Path) -> None:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", tracking_server)
            for stage in (train_lstm, train_bert):
                stage.main(["--params", str(tiny_pipeline)])

    once(shared, "tiny-trained", train)
    return tiny_pipeline


@pytest.fixture(scope="session")
def hub_modules(shared, shared_data) -> dict[str, Path]:
    """The BERT preprocess and encoder modules, built once per run from the real MiniLM
    checkpoint. The preprocess module is built from a copy of vocab.txt that is deleted
    afterwards: the module must not need it."""
    from fakenews.hub.encoder import build_encoder_module
    from fakenews.hub.preprocess import build_preprocess_module

    def build(work: Path) -> None:
        checkpoint = shared_data / "minilm_l6_h384"
        vocab_copy = work / "source" / "vocab.txt"
        vocab_copy.parent.mkdir()
        shutil.copy(checkpoint / "vocab.txt", vocab_copy)
        build_preprocess_module(vocab_copy, work / "bert_preprocess")
        shutil.rmtree(vocab_copy.parent)
        build_encoder_module(checkpoint, work / "bert_encoder")

    work = once(shared, "hub", build)
    return {"preprocess": work / "bert_preprocess", "encoder": work / "bert_encoder"}


# Tests that need a real server, a project copy or the tiny pipeline are `slow`, whether or
# not they say so: `make test-fast` (-m "not slow") runs only what needs none of them.
_SLOW_FIXTURES = {"tracking_server", "tracking_uri", "project_copy", "tiny_repro", "tiny_pipeline",
                  "tiny_trained"}


# The order xdist hands out modules in (make test runs it with --no-loadscope-reorder, which
# keeps this order instead of the largest-first default). The team module starts first: it
# brings its own services up while the tiny repro runs. The long modules that wait for the
# tiny repro come right after the unit tests, so none of them starts last while the other
# worker sits idle.
_FIRST_MODULES = ("test_team.py",)
_AFTER_UNIT_TESTS = ("test_dvc_repro.py", "test_faults.py", "test_distributed_training.py")


def _xdist_order(item: pytest.Item) -> tuple[int, int]:
    name, slow = item.path.name, item.get_closest_marker("slow") is not None
    if name in _FIRST_MODULES:
        return 0, _FIRST_MODULES.index(name)
    if name in _AFTER_UNIT_TESTS:
        return 2, _AFTER_UNIT_TESTS.index(name)
    return (3 if slow else 1), 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    # Unit tests first: the quick verdict comes early, and they run while the run's tiny
    # repro works in the background (_tiny_repro_started). The sort is stable; under xdist
    # it also orders whole modules (_xdist_order), slow tests after unit tests in each.
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)
    if is_worker():
        items.sort(key=_xdist_order)
