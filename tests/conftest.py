"""Shared fixtures: the real offline data, one tracking server, project copies sharing a
DVC cache, and one tiny pipeline run that every test reading its outputs reuses.

Each of these is built once per test run, whether one pytest process or the xdist workers
of `make test` run the tests: tests/support/shared.py holds the mechanics. The helpers the
tests import live in tests/support (commands, tiny, serving, sandbox)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from fakenews.data.params import read_params
from tests.support.commands import SHARED_DATA, commit_all, subprocess_env, write_params
from tests.support.shared import (
    is_worker,
    once,
    record_process,
    shared_root,
    stop_recorded,
    wait_for_file,
)
from tests.support.tiny import (
    TINY_REPRO_EXPERIMENT,
    TINY_REPRO_MODEL,
    TINY_STAGE_PARAMS,
    TinyRepro,
    tiny_params,
)

_WORKER_NICENESS = 5


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"{SHARED_DATA} is missing: the tests read the offline data in place")
    return SHARED_DATA


@pytest.fixture(scope="session")
def nltk_dir(shared_data: Path) -> Path:
    return shared_data / "nltk_data"


# --- the tiny pipeline: one real `dvc repro` per session, reused -------------------------


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


def _tiny_repro_env(tracking_server: str) -> dict[str, str]:
    return {
        **subprocess_env(),
        "MLFLOW_TRACKING_URI": tracking_server,
        "MLFLOW_EXPERIMENT_NAME": TINY_REPRO_EXPERIMENT,
    }


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
        params = read_params(repo / "params.yaml")
        for section, values in {
            **TINY_STAGE_PARAMS,
            "evaluate": {**TINY_STAGE_PARAMS["evaluate"], "registered_model": TINY_REPRO_MODEL},
        }.items():
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
    return TinyRepro(
        repo,
        _tiny_repro_env(tracking_server),
        subprocess.CompletedProcess(command, 0, output, ""),
        outputs,
    )


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_repro, shared, shared_data) -> Path:
    """A params file for in-process stage runs: ingest → split as the run's tiny repro
    left them (60 real headlines), models and metrics in a folder of its own."""

    def write(workdir: Path) -> None:
        write_params(workdir / "params.yaml", tiny_params(tiny_repro.outputs, workdir, shared_data))

    return once(shared, "tiny", write) / "params.yaml"


@pytest.fixture(scope="session")
def tiny_trained(tiny_pipeline, shared, tracking_server) -> Path:
    """Every family trained once more on the tiny profile, in-process, and their ensemble
    blended, logged to the run's server. With the same inputs and params as the tiny repro's
    training (in its own processes), the two must agree: test_determinism compares them."""
    from stages import blend, train_bert, train_lstm, train_tfidf

    def train(_: Path) -> None:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", tracking_server)
            for stage in (train_lstm, train_bert, train_tfidf, blend):
                stage.main(["--params", str(tiny_pipeline)])

    once(shared, "tiny-trained", train)
    return tiny_pipeline


@pytest.fixture(scope="session")
def lstm_model_uri(tiny_trained) -> str:
    """The URI train_lstm logged, from the mlflow_run.json that publish_model writes."""
    models_dir = Path(read_params(tiny_trained)["paths"]["models_dir"])
    return json.loads((models_dir / "lstm" / "mlflow_run.json").read_text())["model_uri"]


@pytest.fixture(scope="session")
def local_model(lstm_model_uri, tracking_server, shared) -> Path:
    """The logged tiny LSTM downloaded to a plain folder, loadable with no server."""
    import mlflow

    def download(folder: Path) -> None:
        path = mlflow.artifacts.download_artifacts(
            lstm_model_uri, dst_path=str(folder / "model"), tracking_uri=tracking_server
        )
        (folder / "path").write_text(path)

    return Path((once(shared, "local-lstm", download) / "path").read_text())


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
_SLOW_FIXTURES = {
    "tracking_server",
    "tracking_uri",
    "project_copy",
    "tiny_repro",
    "tiny_pipeline",
    "tiny_trained",
}


# The order xdist hands out modules in (make test runs it with --no-loadscope-reorder, which
# keeps this order instead of the largest-first default). The team modules start first: they
# bring their own services up while the tiny repro runs. The long modules that wait for the
# tiny repro come right after the unit tests, so none of them starts last while the other
# worker sits idle.
_FIRST_MODULES = ("test_team.py", "test_team_attacks.py")
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
