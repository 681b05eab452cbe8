"""`make bench-team`: doors, load and fault figures for the local SQLite server and the team
service.

Doors (bench.team_doors): every attack of tests/support/attacks.py on the team service, tried
and refused, and S3 upload/download throughput with SeaweedFS's side doors closed next to
the same with them open, in the same rounds.

Load: 1, 4 and 16 concurrent clients (separate processes, released together), each
logging one run with 20 params, 500 metric points (one call each) and a 1 MB artifact,
first against the local server (SQLite, `python -m tools.tracking_server`), then against the team
service (PostgreSQL, S3, basic-auth; `python -m tools.team`). Reported: runs per second,
p50/p95 latency of one metric call, errors; then every run is read back and counted.

Fault (bench.team_fault): PostgreSQL killed while train_lstm runs on the tiny profile.

Both servers run in a throwaway folder on free loopback ports. Prints a table and writes
metrics/bench_team.json. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from bench.output import say, write_bench
from fakenews.data.params import PROJECT_ROOT
from fakenews.processes import free_port

PARAMS, POINTS, ARTIFACT_BYTES = 20, 500, 1 << 20


# --- one client, in its own process ------------------------------------------------------

_release = None


def _init(release, credentials: dict[str, str]) -> None:
    global _release
    _release = release
    os.environ.update(credentials)  # MlflowClient reads MLFLOW_TRACKING_USERNAME/PASSWORD


def client_run(uri: str, experiment_id: str, index: int, work: str) -> dict[str, Any]:
    """One run: params, POINTS metric calls, one artifact; latencies and errors."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    artifact = Path(work) / f"client-{index}" / "blob.bin"
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(hashlib.sha256(str(index).encode()).digest() * (ARTIFACT_BYTES // 32))
    _release.wait()
    began, latencies, errors = time.monotonic(), [], 0
    run_id = client.create_run(experiment_id, tags={"client": str(index)}).info.run_id
    from mlflow.entities import Param

    client.log_batch(run_id, params=[Param(f"p{i}", str(i * index)) for i in range(PARAMS)])
    for step in range(POINTS):
        started = time.perf_counter()
        try:
            client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
        except Exception:  # noqa: BLE001 - counted, the run goes on
            errors += 1
        latencies.append(time.perf_counter() - started)
    client.log_artifact(run_id, str(artifact))
    client.set_terminated(run_id)
    return {
        "run_id": run_id,
        "latencies": latencies,
        "errors": errors,
        "seconds": time.monotonic() - began,
        "sha256": hashlib.sha256(artifact.read_bytes()).hexdigest(),
    }


def load(
    uri: str, credentials: dict[str, str], clients: int, label: str, work: Path
) -> dict[str, Any]:
    """`clients` concurrent runs against `uri`; figures, and what a read-back found."""
    from mlflow.tracking import MlflowClient

    os.environ.update(credentials)
    experiment_id = MlflowClient(uri).create_experiment(f"bench-{label}-{clients}-{time.time_ns()}")
    context = multiprocessing.get_context("spawn")
    release = context.Manager().Event()
    with ProcessPoolExecutor(
        clients, mp_context=context, initializer=_init, initargs=(release, credentials)
    ) as pool:
        futures = [
            pool.submit(client_run, uri, experiment_id, i, str(work)) for i in range(clients)
        ]
        time.sleep(2 + 0.5 * clients)  # let every process import mlflow before the start
        began = time.monotonic()
        release.set()
        results = [future.result() for future in futures]
        wall = time.monotonic() - began
    latencies = sorted(x for r in results for x in r["latencies"])
    figures = {
        "clients": clients,
        "wall_seconds": round(wall, 2),
        "runs_per_second": round(clients / wall, 3),
        "metric_calls_per_second": round(len(latencies) / wall, 1),
        "metric_call_ms_p50": round(1000 * statistics.median(latencies), 2),
        "metric_call_ms_p95": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 2),
        "errors": sum(r["errors"] for r in results),
    }
    figures["read_back"] = read_back(MlflowClient(uri), experiment_id, results, work)
    return figures


def read_back(
    client, experiment_id: str, results: list[dict[str, Any]], work: Path
) -> dict[str, Any]:
    """Count what the server kept of every run: params, metric points, artifact bytes."""
    runs = client.search_runs([experiment_id])
    lost = 0
    for result in results:
        run = client.get_run(result["run_id"])
        history = client.get_metric_history(result["run_id"], "loss")
        folder = tempfile.mkdtemp(dir=work)
        blob = Path(client.download_artifacts(result["run_id"], "blob.bin", folder))
        lost += (
            (len(run.data.params) != PARAMS)
            + (len(history) != POINTS - result["errors"])
            + (hashlib.sha256(blob.read_bytes()).hexdigest() != result["sha256"])
            + (run.info.status != "FINISHED")
        )
    return {
        "runs": len(runs),
        "expected_runs": len(results),
        "lost_items": lost,
        "metric_points": sum(len(client.get_metric_history(r["run_id"], "loss")) for r in results),
    }


# --- the two servers ------------------------------------------------------------------------


def bench_backends(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from bench import team_doors, team_fault
    from fakenews.team import stack
    from fakenews.team.layout import ADMIN, read_env_file, team_paths
    from fakenews.team.postgres import Postgres
    from fakenews.tracking.server import running_server

    report: dict[str, Any] = {"load": {}}
    with running_server(work / "sqlite") as local:
        say(f"SQLite server at {local.uri}")
        report["load"]["sqlite"] = {
            str(n): load(local.uri, {}, n, "sqlite", work) for n in args.clients
        }
    root = work / "team"
    root.mkdir(mode=0o700)
    try:
        team = stack.up(root, say=say, port=free_port())
        report["doors"] = team_doors.bench_doors(
            team, work, args.doors_rounds, args.doors_objects, args.doors_mib << 20
        )
        env = read_env_file(team.paths.client_env(ADMIN))
        credentials = {k: v for k, v in env.items() if k.startswith("MLFLOW_")}
        report["load"]["team"] = {
            str(n): load(team.uri, credentials, n, "team", work) for n in args.clients
        }
        if not args.skip_fault:
            report["fault"] = team_fault.kill_postgres_during_training(team, credentials, work)
    finally:
        stack.down(root, say=say)
        Postgres(team_paths(root), 0).delete_cluster()  # in the postgres user's home, as root
    return report


def render(report: dict[str, Any]) -> str:
    lines = [
        "| backend | clients | runs/s | metric calls/s | metric call p50 / p95 ms | errors | "
        "lost |",
        "|---|---|---|---|---|---|---|",
    ]
    for backend, by_clients in report["load"].items():
        for n, f in by_clients.items():
            lines.append(
                f"| {backend} | {n} | {f['runs_per_second']:.2f} | "
                f"{f['metric_calls_per_second']:.0f} "
                f"| {f['metric_call_ms_p50']:.1f} / {f['metric_call_ms_p95']:.1f} | {f['errors']} "
                f"| {f['read_back']['lost_items']} |"
            )
    if "fault" in report:
        lines.append(f"\nfault: {report['fault']}")
    if "doors" in report:
        doors, s3 = report["doors"], report["doors"]["s3_throughput"]
        lines.append(
            f"\nattacks refused: {doors['attacks']['refused']}/{doors['attacks']['tried']} "
            f"(SeaweedFS as it comes: {doors['attacks_on_open_seaweedfs']['refused']}/"
            f"{doors['attacks_on_open_seaweedfs']['tried']}); S3 closed/open: upload "
            f"{s3['upload_closed_over_open']}, download {s3['download_closed_over_open']} "
            f"(bound {s3['bound']})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.team",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--clients",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 4, 16],
        help="concurrent client counts (default: 1,4,16)",
    )
    parser.add_argument("--skip-fault", action="store_true", help="no fault figures")
    parser.add_argument(
        "--doors-rounds", type=int, default=10, help="S3 throughput rounds (default: 10)"
    )
    parser.add_argument(
        "--doors-objects", type=int, default=6, help="objects per round and way (default: 6)"
    )
    parser.add_argument("--doors-mib", type=int, default=8, help="object size in MiB (default: 8)")
    parser.add_argument("--out", default=str(PROJECT_ROOT / "metrics" / "bench_team.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-team-") as tmp:
        work = Path(tmp)
        report = {
            "machine": {"cpus": os.cpu_count()},
            "per_client": {
                "params": PARAMS,
                "metric_points": POINTS,
                "artifact_bytes": ARTIFACT_BYTES,
            },
            **bench_backends(args, work),
        }
    write_bench(args.out, report)
    print(render(report))


if __name__ == "__main__":
    main()
