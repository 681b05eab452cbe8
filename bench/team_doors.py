"""The doors half of `make bench-team`: what closing SeaweedFS's side doors refuses, and
what it costs the S3 path.

- attacks: every knock of tests/support/attacks.py on the running team service (side doors,
  front doors without their keys, `reader` taking names), tried and refused; and the same
  side-door knocks on a second SeaweedFS started as it comes (`S3Server(closed=False)`,
  today's configuration before issue 27), which shows the knocks are real ones.
- S3 throughput: uploads and downloads through boto3 as the MLflow server's identity, on
  the team's SeaweedFS (doors closed: JWT on the volume, mTLS elsewhere) and on the open
  one, in the same rounds, in alternating order (ABBA), each round's closed/open ratio
  kept; the median ratio is the figure, the bound is 0.90 (closing may cost ≤ 10 %).
"""

from __future__ import annotations

import io
import os
import re
import statistics
import time
from pathlib import Path
from typing import Any

from bench.output import say
from fakenews.team.layout import load_secrets, team_paths
from fakenews.team.s3 import MLFLOW_BUCKET, S3Server, pick_ports
from fakenews.team.s3_security import certificate_chain
from fakenews.team.stack import Team
from tests.support import attacks

BOUND = 0.90  # doors closed / doors open throughput, at least


def attack_figures(knocks: list[attacks.Knock]) -> dict[str, Any]:
    """Tried, refused, and how many got in outright (HTTP 2xx, gRPC OK) by kind of door."""
    got_in = [k for k in knocks if k.answer.startswith("HTTP 2") or k.answer == "OK"]
    return {
        "tried": len(knocks),
        "refused": sum(k.refused for k in knocks),
        "got_in": len(got_in),
        "not_refused": [str(k) for k in knocks if not k.refused],
        "doors": sorted({re.sub(r" (127\.0\.0\.1:\d+|unix:\S+|/\S+)", "", k.door) for k in knocks}),
    }


def _mb_per_second(seconds: float, count: int, size: int) -> float:
    return round(count * size / seconds / 1e6, 1)


def _one_way(client, prefix: str, blobs: list[bytes]) -> tuple[float, float]:
    """(upload, download) MB/s of `blobs` under `prefix`."""
    began = time.perf_counter()
    for i, blob in enumerate(blobs):
        client.upload_fileobj(io.BytesIO(blob), MLFLOW_BUCKET, f"{prefix}/{i}")
    upload = time.perf_counter() - began
    began = time.perf_counter()
    for i in range(len(blobs)):
        client.download_fileobj(MLFLOW_BUCKET, f"{prefix}/{i}", io.BytesIO())
    download = time.perf_counter() - began
    size = len(blobs[0])
    return _mb_per_second(upload, len(blobs), size), _mb_per_second(download, len(blobs), size)


def s3_throughput(clients: dict[str, Any], rounds: int, objects: int, size: int) -> dict[str, Any]:
    """Upload and download MB/s of each client, interleaved round by round (ABBA)."""
    blobs = [os.urandom(size) for _ in range(objects)]
    runs: dict[str, dict[str, list[float]]] = {n: {"upload": [], "download": []} for n in clients}
    names = list(clients)
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            up, down = _one_way(clients[name], f"bench-doors/{index}", blobs)
            runs[name]["upload"].append(up)
            runs[name]["download"].append(down)
        latest = (f"{n} {runs[n]['upload'][-1]}/{runs[n]['download'][-1]} MB/s" for n in names)
        say(f"doors: round {index + 1}/{rounds} (up/down): {', '.join(latest)}")
    figures: dict[str, Any] = {
        "objects_per_round": objects,
        "object_bytes": size,
        "rounds": rounds,
        **{name: {k: v for k, v in by_way.items()} for name, by_way in runs.items()},
    }
    for way in ("upload", "download"):
        ratios = [c / o for c, o in zip(runs["closed"][way], runs["open"][way], strict=True)]
        figures[f"{way}_median_mb_s"] = {n: statistics.median(runs[n][way]) for n in names}
        figures[f"{way}_closed_over_open"] = round(statistics.median(ratios), 3)
    figures["bound"] = BOUND
    figures["within_bound"] = all(
        figures[f"{way}_closed_over_open"] >= BOUND for way in ("upload", "download")
    )
    return figures


def bench_doors(team: Team, work: Path, rounds: int, objects: int, size: int) -> dict[str, Any]:
    secrets = load_secrets(team.paths)
    knocks = attacks.every_attack(team)
    say(f"doors: {sum(k.refused for k in knocks)} of {len(knocks)} attacks refused")
    open_s3 = S3Server(team_paths(work / "open-seaweedfs"), pick_ports(), closed=False)
    open_s3.start(secrets)
    try:
        open_knocks = attacks.side_doors(open_s3, certificate_chain("bench")[0].encode())
        say(
            f"doors: on SeaweedFS as it comes, {sum(k.refused for k in open_knocks)} of "
            f"{len(open_knocks)} side-door attacks refused"
        )
        clients = {
            "closed": team.s3.client(secrets, "TEAM_S3"),
            "open": open_s3.client(secrets, "TEAM_S3"),
        }
        throughput = s3_throughput(clients, rounds, objects, size)
    finally:
        open_s3.stop()
    return {
        "attacks": attack_figures(knocks),
        "attacks_on_open_seaweedfs": attack_figures(open_knocks),
        "s3_throughput": throughput,
    }
