"""The benchmark figures of README.md and docs/, generated from the files the benchmarks
wrote (bench.output): each block names the commit its figures were measured at, and a
file that is not one run of one commit (`bench.output.mixed_commits`) is refused rather
than shown. tools/docs.py lists these generators beside its own."""

from __future__ import annotations

from typing import Any

from bench.output import mixed_commits
from fakenews.data.params import PROJECT_ROOT
from fakenews.errors import PipelineError

METRICS = PROJECT_ROOT / "metrics"


def read_bench(name: str, section: str) -> dict[str, Any]:
    """`section` of metrics/`name`, after checking the file is one run of one commit."""
    import json

    path = METRICS / name
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{path}: not found; run the benchmark that writes it") from None
    problems = mixed_commits(report)
    if problems:
        raise PipelineError(f"{path}: not one run of one commit ({'; '.join(problems)})")
    if section not in report:
        raise PipelineError(f"{path}: no section {section!r}")
    return report[section]


LSTM_PARTS = {
    "cleaning": "cleaning",
    "vocabulary_lookup": "vocabulary lookup",
    "tensorflow": "TensorFlow",
}


def op_shares(profile: dict[str, Any]) -> str:
    """The kinds of op time from the largest, those under one percent left out."""
    shares = sorted(profile["share"].items(), key=lambda item: -item[1])
    return ", ".join(f"{kind} {share:.0%}" for kind, share in shares if share >= 0.01)


def times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def runs(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def throughput() -> list[str]:
    """Scoring speed against the matmul bound, bfloat16 beside float32, and the LSTM."""
    figures = read_bench("bench_throughput.json", "throughput")
    bert, lstm, protocol = figures["bert_scoring"], figures["lstm_scoring"], figures["protocol"]
    f32 = bert["float32"]
    best_bounds = {
        name: max(f32[f"{name}_gflops"])
        for name in ("float32", "bfloat16")
        if f"{name}_gflops" in f32
    }
    bound_text = " and ".join(f"{value:,} GFLOPS {name}" for name, value in best_bounds.items())
    lines = [
        f"Measured at commit `{figures['commit'][:10]}` by `make bench-throughput` "
        f"(metrics/bench_throughput.json) on {figures['machine']['cpus']} CPUs: "
        f"`pyfunc.load_model(...).predict` on the corpus {times(protocol['corpus_repeats'])} "
        f"over ({protocol['headlines']:,} headlines), {protocol['runs']} runs of "
        f"{protocol['rounds_per_run']} rounds interleaving the variants with the matmul bound, "
        f"each run's best of each; best bound probed {bound_text}.",
        "",
        "| scoring | headlines/s (best) | of the float32 matmul bound, per run | "
        "against BERT float32, per run |",
        "|---|---|---|---|",
        f"| BERT, float32 | {f32['items_per_second_best']:,.0f} | "
        f"{runs(f32['ratio_float32'])} | 1 |",
    ]
    names = {"bfloat16": "BERT, bfloat16", "float32_xla": "BERT, float32 compiled by XLA"}
    for variant, name in names.items():
        if variant in bert:
            fig = bert[variant]
            own_bound = (
                f" (of the bfloat16 bound: {runs(fig['ratio_bfloat16'])})"
                if variant == "bfloat16" and "ratio_bfloat16" in fig
                else ""
            )
            lines.append(
                f"| {name} | {fig['items_per_second_best']:,.0f} | "
                f"{runs(fig['ratio_float32'])}{own_bound} | {runs(bert[f'{variant}_speedup'])} |"
            )
    lines.append(
        f"| LSTM | {lstm['items_per_second_best']:,.0f} | – | – |",
    )
    lines.append("")
    if "bfloat16" in bert:
        low, full = bert["bfloat16"]["test"], f32["test"]
        lines.append(
            f"BERT on the test split: accuracy {low['accuracy']:.4f} in bfloat16 against "
            f"{full['accuracy']:.4f} in float32, ROC-AUC {low['roc_auc']:.4f} against "
            f"{full['roc_auc']:.4f}; the largest probability change "
            f"{bert['bfloat16']['max_abs_probability_difference']:.4f}."
        )
    for precision in ("float32", "bfloat16"):
        if precision in bert["op_time"]:
            lines.append(
                f"Op time of a BERT {precision} pass: {op_shares(bert['op_time'][precision])}."
            )
    lines.append(
        f"The tokenizer takes {bert['tokenizer_share_of_float32']:.0%} of a float32 pass. "
        f"The LSTM: {lstm['first_call_items_per_second']:,.0f} headlines/s on a fresh model's "
        f"first call (no word cleaned yet); warm, "
        + ", ".join(f"{LSTM_PARTS.get(k, k)} {v:.0%}" for k, v in lstm["time_share"].items())
        + " of its time."
    )
    return lines


def team_load() -> list[str]:
    """bench.team's load figures per backend and number of clients."""
    load = read_bench("bench_team.json", "load")
    names = {"sqlite": "local (SQLite)", "team": "team (PostgreSQL, S3, logins)"}
    rows = [
        "| server | clients | runs/s | metric calls/s | metric call p50 / p95 ms | errors | "
        "runs read back whole |",
        "|---|---|---|---|---|---|---|",
    ]
    for backend, by_clients in load.items():
        if backend == "commit":  # read_bench checked it is the file's
            continue
        for clients, f in sorted(by_clients.items(), key=lambda item: int(item[0])):
            back = f["read_back"]
            whole = back["runs"] if not back["lost_items"] else back["runs"] - 1
            rows.append(
                f"| {names.get(backend, backend)} | {clients} | {f['runs_per_second']:.2f} | "
                f"{f['metric_calls_per_second']:.0f} | {f['metric_call_ms_p50']:.0f} / "
                f"{f['metric_call_ms_p95']:.0f} | {f['errors']} | "
                f"{whole}/{back['expected_runs']} |"
            )
    return rows


def team_doors() -> list[str]:
    """bench.team's doors: attacks refused, and S3 throughput with SeaweedFS's side doors
    closed next to open, measured in the same rounds."""
    doors = read_bench("bench_team.json", "doors")
    tried, opened, s3 = doors["attacks"], doors["attacks_on_open_seaweedfs"], doors["s3_throughput"]
    rows = [
        f"Attacks refused: {tried['refused']} of {tried['tried']}, {tried['got_in']} got in. The "
        f"same side-door attacks on SeaweedFS as it comes: {opened['refused']} of "
        f"{opened['tried']} refused, "
        f"{opened['got_in']} got in (HTTP 2xx, gRPC OK). S3 path, "
        f"{s3['objects_per_round']} objects of {s3['object_bytes'] >> 20} MiB per way and round, "
        f"medians of {s3['rounds']} interleaved rounds:",
        "",
        f"| S3 | doors open, MB/s | doors closed, MB/s | closed / open (≥ {s3['bound']:.2f}) |",
        "|---|---|---|---|",
    ]
    for way in ("upload", "download"):
        mb_s, ratio = s3[f"{way}_median_mb_s"], s3[f"{way}_closed_over_open"]
        rows.append(f"| {way} | {mb_s['open']:.0f} | {mb_s['closed']:.0f} | {ratio:.2f} |")
    return rows


def ensemble_cost() -> list[str]:
    """bench.inference: the ensemble's pyfunc scoring time beside each member's."""
    cost = read_bench("bench_inference.json", "ensemble_cost")
    rows = [
        f"Scoring the corpus ({cost['headlines']:,} headlines) through each logged pyfunc, "
        f"interleaved, best of {cost['rounds']} rounds (`python -m bench.inference`, "
        f"`metrics/bench_inference.json`, commit `{cost['commit'][:10]}`):",
        "",
        "| model | headlines/s | seconds |",
        "|---|---|---|",
    ]
    for name, rate in cost["headlines_per_second"].items():
        rows.append(f"| {name} | {rate:,.0f} | {cost['seconds'][name]:.2f} |")
    rows += [
        "",
        f"The ensemble costs {cost['ensemble_over_members_together']:.2f}× its members "
        f"together and {cost['ensemble_over_bert']:.2f}× BERT alone.",
    ]
    return rows


def faults() -> list[str]:
    """bench.faults: the guarantees' attacks in bulk, as counts."""
    bad = read_bench("bench_faults.json", "bad_inputs")
    kills = read_bench("bench_faults.json", "kills")
    promotion = read_bench("bench_faults.json", "promotion")
    inputs = ", ".join(
        f"{where} {bad[where]['tried']} tried / {bad[where]['unclean']} unclean"
        for where in ("ingest", "score", "params")
    )
    return [
        f"At commit `{kills['commit'][:10]}`: bad inputs {inputs} (each refused in one line or "
        f"accepted whole); {kills['kills_injected']} writers SIGKILLed, "
        f"{kills['outputs_intact']} outputs old or new; {promotion['races_run']} promotion races, "
        f"{promotion['invariants_held']} with every invariant; {promotion['promoters_killed']} "
        f"promoters killed mid-step, {promotion['finished_by_the_next']} finished by the next."
    ]


def suite() -> list[str]:
    """bench.suite --baseline: this suite beside an earlier commit's, in one run, and where
    this one's CPU goes."""
    now = read_bench("bench_suite.json", "suite")
    base = read_bench("bench_suite.json", "baseline")
    ratio = read_bench("bench_suite.json", "over_baseline")
    rows = [
        "| suite | exit | wall min | busy CPU-min | floor on 2 cores, min |",
        "|---|---|---|---|---|",
    ]
    for name, f in ((f"`{base['baseline_commit'][:10]}` (baseline)", base), ("this commit", now)):
        rows.append(
            f"| {name} | {f['exit_status']} | {f['wall_minutes']:.1f} | "
            f"{f['busy_cpu_minutes']:.1f} | {f['floor_minutes']:.1f} |"
        )
    rows += [
        "",
        f"This suite / the baseline's, same machine, one run: wall {ratio['wall']:.2f}, "
        f"CPU {ratio['busy_cpu']:.2f}. Where this suite's CPU goes:",
        "",
        "| kind of process | processes | CPU s |",
        "|---|---|---|",
    ]
    by_cpu = sorted(now["by_kind"].items(), key=lambda item: -item[1]["cpu_seconds"])
    for kind, k in by_cpu[:8]:
        rows.append(f"| {kind} | {k['processes']} | {k['cpu_seconds']:.0f} |")
    return rows
