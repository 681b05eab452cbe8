"""`make bench-faults`: the fault report. Bad inputs tried and refused cleanly, writers
SIGKILLed and outputs intact, promotion races run and invariants held.

- bad inputs: a seeded corpus of hostile files (random bytes, broken quoting, NUL, mixed
  encodings, 100 kB cells, empty and header-only files, a row longer than its header,
  unknown labels) given to `python -m stages.ingest` and `python -m tools.score` as a user
  runs them, and wrong values at every key of params.yaml given to the params loader.
  Clean: exit status 2 and one `error:` line naming the file, no traceback, nothing
  written; or, for an input that is fine, a whole output. Anything else counts unclean.
- kills: a writer of a file and of a folder SIGKILLed at each step of atomic_path's
  replace (fakenews.faults), `--kill-repeats` times; intact: old or new every time, and
  the next run recovers with no leftover (tests/support/writers.py).
- promotion: on a throwaway `mlflow server`, two promoter processes race `--rounds` times,
  the invariants checked after each round; then a promoter is SIGKILLed at every step of
  a promotion, a forced promotion and a rollback, and the next one must finish it
  (tests/support/promoters.py). The promoters register the trained LSTM (`--model`, by
  default models/lstm of `make repro`) re-logged with this checkout's code, so the
  champion's rescore runs in-process as it does after a retraining here.

Writes metrics/bench_faults.json. Not part of the test suite (its attacks are: tests/).
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from bench.output import say, write_bench
from fakenews.data.params import PROJECT_ROOT, ParamsError, load_params, read_params
from tests.support.commands import SHARED_DATA, subprocess_env

FAKENEWSNET = SHARED_DATA / "fakenewsnet"


# ---- a seeded corpus of hostile files -------------------------------------------------------


def hostile_files(seed: int, count: int) -> list[tuple[str, bytes]]:
    """(kind, bytes) of `count` files, every kind in turn, the content drawn from `seed`."""
    rng = random.Random(seed)
    cells = ['"', '"never closed', "a,b", "line\nbreak", "\x00", "Fake", "Real", "", "satire"]

    def table(header: str) -> str:
        rows = ["\t".join(rng.choice(cells) for _ in range(2)).replace("\t", ",") for _ in range(5)]
        return header + "\n" + "\n".join(rows) + "\n"

    kinds = {
        "random bytes": lambda: rng.randbytes(rng.randint(1, 400)),
        "broken quoting": lambda: table("title,label").encode(),
        "NUL bytes": lambda: b"title,label\nA\x00B,Fake\n\x00,Real\n",
        "latin-1 as utf-8": lambda: "title,label\nCafé arrested,Fake\n".encode("latin-1"),
        "mixed encodings": lambda: (
            "title,label\nCafé,Fake\n".encode() + "Café,Real\n".encode("latin-1")
        ),
        "utf-16": lambda: table("title,label").encode("utf-16"),
        "100 kB cell": lambda: b"title,label\n" + b"x" * 100_000 + b",Fake\nshort,Real\n",
        "empty": lambda: b"",
        "header only": lambda: b"title,label\n",
        "row longer than header": lambda: b"title,label\nAliens land,Fake,extra\n",
        "unknown labels": lambda: b"title,label\nA,satire\nB,Fake\n",
        "wrong columns": lambda: table(rng.choice(["headline,label", "x", ",,"])).encode(),
        "well formed": lambda: (
            b"title,label\nAliens land in Ohio,Fake\nSenate passes budget,Real\n"
        ),
    }
    names = list(kinds)
    return [(names[i % len(names)], kinds[names[i % len(names)]]()) for i in range(count)]


def _clean_refusal(proc: subprocess.CompletedProcess, named: Path, outputs: list[Path]) -> str:
    """'' when the command refused cleanly or wrote whole outputs; else what was wrong."""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    if "Traceback" in proc.stderr:
        return "traceback"
    if proc.returncode == 0:
        return "" if all(p.exists() for p in outputs) else "exit 0 but an output is missing"
    if proc.returncode != 2 or len(errors) != 1:
        return f"exit {proc.returncode}, {len(errors)} error lines"
    if str(named) not in errors[0]:
        return "the error does not name the file"
    if any(p.exists() for p in outputs):
        return "refused, but left output"
    return ""


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=subprocess_env(), capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip


def try_ingest(work: Path, index: int, content: bytes) -> tuple[str, str]:
    folder = work / f"ingest-{index}"
    folder.mkdir()
    source, out = folder / "raw.csv", folder / "out"
    source.write_bytes(content)
    params = read_params()
    params["ingest"].update(format="csv", path=str(source))
    params["paths"].update(ingested=str(out / "h.parquet"), ingest_report=str(out / "r.json"))
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    proc = _run(["-m", "stages.ingest", "--params", str(folder / "params.yaml")], PROJECT_ROOT)
    return ("accepted" if proc.returncode == 0 else "refused"), _clean_refusal(
        proc, source, [out / "h.parquet", out / "r.json"]
    )


def try_score(work: Path, index: int, content: bytes, model: Path) -> tuple[str, str]:
    folder = work / f"score-{index}"
    folder.mkdir()
    source, out = folder / "in.csv", folder / "out" / "scored.csv"
    source.write_bytes(content)
    args = ["-m", "tools.score", "--input", str(source), "--output", str(out)]
    proc = _run([*args, "--model", str(model)], PROJECT_ROOT)
    return ("accepted" if proc.returncode == 0 else "refused"), _clean_refusal(proc, source, [out])


def try_params(work: Path, seed: int) -> list[tuple[str, str]]:
    """Every key of params.yaml with wrong values of every type, loaded in-process."""
    rng = random.Random(seed)
    wrong = ["abc", "seven", [1, 2], {"a": 1}, None, True, -3, 0, 1e300, float("nan"), ""]
    outcomes = []

    def leaves(tree, path=()):
        for key, value in tree.items():
            if isinstance(value, dict) and value:
                yield from leaves(value, (*path, key))
            else:
                yield (*path, key)

    defaults = read_params()
    for index, key in enumerate(leaves(defaults)):
        params = yaml.safe_load(yaml.safe_dump(defaults))
        node = params
        for part in key[:-1]:
            node = node[part]
        node[key[-1]] = rng.choice(wrong)
        path = work / f"params-{index}.yaml"
        path.write_text(yaml.safe_dump(params))
        try:
            load_params(path)
            outcomes.append(("accepted", ""))
        except ParamsError as err:
            lines = str(err).splitlines()
            ok = all(line.startswith(f"{path}: ") for line in lines)
            outcomes.append(("refused", "" if ok else "a line does not name the file"))
        except Exception as err:  # the report counts it: nothing else may escape
            outcomes.append(("refused", f"{type(err).__name__}"))
    return outcomes


def tally(outcomes: list[tuple[str, str]]) -> dict[str, Any]:
    problems = sorted({problem for _, problem in outcomes if problem})
    return {
        "tried": len(outcomes),
        "refused_cleanly": sum(1 for kind, p in outcomes if kind == "refused" and not p),
        "accepted_whole": sum(1 for kind, p in outcomes if kind == "accepted" and not p),
        "unclean": sum(1 for _, p in outcomes if p),
        "problems": problems,
    }


def bad_inputs(work: Path, model: Path, seed: int, count: int) -> dict[str, Any]:
    files = hostile_files(seed, count)
    with ThreadPoolExecutor(2) as pool:  # two processes at a time: the machine has two cores
        ingest = list(pool.map(lambda a: try_ingest(work, a[0], a[1][1]), enumerate(files)))
        score = list(pool.map(lambda a: try_score(work, a[0], a[1][1], model), enumerate(files)))
    figures = {
        "ingest": tally(ingest),
        "score": tally(score),
        "params": tally(try_params(work, seed)),
    }
    figures["kinds"] = sorted({kind for kind, _ in files})
    return figures


# ---- kills ----------------------------------------------------------------------------------


def kills(work: Path, repeats: int) -> dict[str, Any]:
    from tests.support.writers import STEPS, kill_and_check

    results = []
    for repeat in range(repeats):
        for kind, steps in STEPS.items():
            for step in steps:
                folder = work / f"kill-{repeat}-{kind}-{step}"
                folder.mkdir()
                results.append(kill_and_check(folder, kind, step))
    problems = sorted({p for found in results for p in found})
    return {
        "kills_injected": len(results),
        "outputs_intact": sum(1 for found in results if not found),
        "steps": {kind: list(steps) for kind, steps in STEPS.items()},
        "problems": problems,
    }


# ---- promotion ------------------------------------------------------------------------------


def relogged_model(model: Path, work: Path) -> Path:
    """`model` (an MLflow model folder) with this checkout's fakenews as its logged code."""
    copy = work / "model"
    shutil.copytree(model, copy)
    shutil.rmtree(copy / "code" / "fakenews")
    shutil.copytree(
        PROJECT_ROOT / "fakenews",
        copy / "code" / "fakenews",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return copy


def held_out_rows(per_label: int = 30) -> tuple[list[str], list[int]]:
    import pandas as pd

    titles, labels = [], []
    for label, file in ((1, "politifact_fake.csv"), (0, "politifact_real.csv")):
        frame = pd.read_csv(FAKENEWSNET / file, dtype=str, keep_default_na=False).head(per_label)
        titles += frame["title"].tolist()
        labels += [label] * len(frame)
    return titles, labels


def promotion(work: Path, model: Path, rounds: int) -> dict[str, Any]:
    import mlflow
    from mlflow.tracking import MlflowClient

    from fakenews.processes import free_port
    from fakenews.scoring.models import load_model
    from fakenews.tracking.promotion import scored_by
    from fakenews.tracking.server import start_server, stop_server
    from tests.support.promoters import Inputs, kill_scenarios, race

    handle = start_server(work / "server", free_port(), say=lambda _: None)
    import os

    os.environ["MLFLOW_TRACKING_URI"] = handle.uri
    try:
        mlflow.set_tracking_uri(handle.uri)
        mlflow.set_experiment("bench-faults")
        with mlflow.start_run() as run:
            mlflow.log_artifacts(str(model), "model")
        titles, labels = held_out_rows()
        scored = scored_by(load_model(str(model)), titles)
        inputs = Inputs(
            f"runs:/{run.info.run_id}/model", run.info.run_id, titles, labels,
            scored.probabilities.tolist(),
        )  # fmt: skip
        client = MlflowClient(handle.uri)
        began = time.monotonic()
        outcome = race(client, "bench-race", inputs, rounds)
        race_seconds = time.monotonic() - began
        killed = kill_scenarios(client, inputs, work, handle.uri, "bench")
    finally:
        stop_server(handle, say=lambda _: None)
    return {
        "races_run": len(outcome),
        "invariants_held": sum(1 for r in outcome if not r["violations"] and not r["errors"]),
        "race_seconds": round(race_seconds, 1),
        "promoters_killed": len(killed),
        "finished_by_the_next": sum(1 for k in killed if not k["problems"]),
        "kill_points": sorted({f"{k['action']}@{k['point']}" for k in killed}),
        "problems": sorted(
            {v for r in outcome for v in r["violations"] + r["errors"]}
            | {p for k in killed for p in k["problems"]}
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(PROJECT_ROOT / "models" / "lstm"))
    parser.add_argument("--inputs", type=int, default=39, help="hostile files per command")
    parser.add_argument("--kill-repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=20, help="promotion races")
    parser.add_argument("--seed", type=int, default=26)
    parser.add_argument("--out", default=str(PROJECT_ROOT / "metrics" / "bench_faults.json"))
    args = parser.parse_args()
    model = Path(args.model)
    if not (model / "MLmodel").is_file():
        sys.exit(f"error: {model} is not an MLflow model folder; run `make repro` or pass --model")
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as folder:
        work = Path(folder)
        local = relogged_model(model, work)
        say(f"bad inputs: {args.inputs} hostile files each for ingest and score, and params")
        figures = {"bad_inputs": bad_inputs(work, local, args.seed, args.inputs)}
        say(f"kills: every step of a file and a folder replace, {args.kill_repeats} times")
        figures["kills"] = kills(work, args.kill_repeats)
        say(f"promotion: {args.rounds} races of two promoters, then a promoter killed at each step")
        figures["promotion"] = promotion(work, local, args.rounds)
    write_bench(args.out, figures)
    counts = {
        f"bad inputs ({kind})": figures["bad_inputs"][kind]
        for kind in ("ingest", "score", "params")
    }
    counts.update(kills=figures["kills"], promotion=figures["promotion"])
    for section, values in counts.items():
        say(f"{section}: { {k: v for k, v in values.items() if not isinstance(v, list | dict)} }")


if __name__ == "__main__":
    main()
