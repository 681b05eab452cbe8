"""Trace an MLflow run back to the code, data and params that produced it.

    python -m tools.trace <run_id>             # commit, dirty flag, inputs, params, command
    python -m tools.trace models/lstm          # the run that trained this checkout's LSTM
    python -m tools.trace <run_id> --checkout  # restore them in this repository
    python -m tools.trace <run_id> --checkout --dry-run   # print the restore commands only

Reads the tags every stage run carries (fakenews.tracking.runs.run_tags): git.commit,
git.dirty, dvc.stage, dvc.dep.<path> (the DVC md5 of each input), command, and under
`dvc exp run` dvc.exp.name. Restoring is `git checkout <commit>` then `dvc checkout`;
for a run made by `dvc exp run` it is `dvc exp apply <name>` instead of `dvc checkout`,
because the experiment's params (and uncommitted code) live in the experiment, not in
the commit. Afterwards every recorded input is hashed again and compared with the run.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys

from fakenews.cli import Parser
from fakenews.errors import PipelineError, cli_errors
from fakenews.tracking.provenance import RunTrace, describe, fetch_trace, run_id_of

FULL_COMMIT = re.compile(r"[0-9a-f]{40}")
EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def restore_commands(trace: RunTrace) -> list[list[str]]:
    """The commands that bring this repository back to the run's code and data.

    Tags are anyone's to set, so only a full hexadecimal commit and a plain experiment
    name reach git and DVC: nothing that could be read as an option or a revision range.
    """
    if trace.commit is None:
        raise PipelineError(
            f"run {trace.run_id} has no git.commit tag: it was not logged "
            "from a git checkout, so there is nothing to check out"
        )
    if not FULL_COMMIT.fullmatch(trace.commit):
        raise PipelineError(
            f"run {trace.run_id}: its git.commit tag {trace.commit[:60]!r} is not "
            "a full 40-digit hexadecimal commit id; refusing to pass it to git"
        )
    if trace.exp_name and not EXPERIMENT_NAME.fullmatch(trace.exp_name):
        raise PipelineError(
            f"run {trace.run_id}: its dvc.exp.name tag {trace.exp_name[:60]!r} is "
            "not a DVC experiment name; refusing to pass it to dvc"
        )
    data = ["dvc", "exp", "apply", trace.exp_name] if trace.exp_name else ["dvc", "checkout"]
    return [["git", "checkout", trace.commit], data]


def check_restorable(trace: RunTrace, worktree_status: str | None, allow_dirty_run: bool) -> None:
    """Raise PipelineError when a checkout would lose work or restore the wrong code."""
    if worktree_status is None:
        raise PipelineError("this project is not a git checkout; cannot check out a commit")
    if worktree_status:
        raise PipelineError(
            "the working tree has uncommitted changes, which a checkout could "
            "overwrite or mix in; commit or stash them first:\n" + worktree_status
        )
    if trace.code_may_differ and not allow_dirty_run:
        what = (
            "its code had uncommitted changes"
            if trace.dirty == "true"
            else "nobody knows whether its code had uncommitted changes"
        )
        raise PipelineError(
            f"run {trace.run_id} ran with git.dirty={trace.dirty}: {what} on top of "
            f"{trace.commit}, so checking that commit out may not give the code that ran. "
            "Pass --allow-dirty-run to check it out anyway."
        )


def differing_inputs(trace: RunTrace) -> list[str]:
    """The recorded inputs whose DVC md5 in this repository is not the run's."""
    from fakenews.data.params import project_path
    from fakenews.tracking.lineage import path_hash

    def current(path: str) -> str:
        target = project_path(path)
        return path_hash(target) if target.exists() else "missing"

    return [path for path, md5 in trace.deps.items() if current(path) != md5]


def execute(command: list[str]) -> bool:
    """Run one restore command in the project, output shown; dvc via this interpreter."""
    from fakenews.data.params import PROJECT_ROOT

    argv = [sys.executable, "-m", "dvc", *command[1:]] if command[0] == "dvc" else command
    print(f"$ {shlex.join(command)}", flush=True)
    return subprocess.run(argv, cwd=PROJECT_ROOT).returncode == 0


def restore(trace: RunTrace, dry_run: bool, allow_dirty_run: bool) -> None:
    """--checkout: refuse what is unsafe, then print (dry_run) or run the commands."""
    from fakenews.tracking.lineage import git_output

    commands = restore_commands(trace)
    check_restorable(
        trace, git_output("status", "--porcelain", "--untracked-files=no"), allow_dirty_run
    )
    if trace.code_may_differ:
        print(
            f"warning: run {trace.run_id} ran on uncommitted changes; the code checked out "
            "may differ from the code that ran",
            file=sys.stderr,
        )
    if dry_run:
        print("\n".join(shlex.join(command) for command in commands))
    else:
        run_restore(trace, *commands)


def run_restore(trace: RunTrace, code_command: list[str], data_command: list[str]) -> None:
    """Check out code then data, and hold the result against the run's recorded inputs."""
    if not execute(code_command):
        raise PipelineError(f"`{shlex.join(code_command)}` failed (output above)")
    # `dvc checkout` also fails for outputs of stages unrelated to this run that are not in
    # the cache (never built here); what counts is whether the run's own inputs came back.
    data_ok = execute(data_command)
    differing = differing_inputs(trace)
    if differing:
        why = (
            "DVC could not restore them (output above): `dvc pull` (`dvc exp pull` for an "
            "experiment) fetches them, `dvc repro` rebuilds them"
            if not data_ok
            else "they are outside the repository or not tracked by DVC"
        )
        raise PipelineError(
            f"checked out {trace.commit}, but these inputs differ from the "
            f"run's: {', '.join(differing)}; {why}"
        )
    if not data_ok:
        print(
            f"note: `{shlex.join(data_command)}` could not restore everything (see above), "
            "but all of this run's inputs are back",
            file=sys.stderr,
        )
    print(f"restored: {len(trace.deps)} recorded input(s) match run {trace.run_id}")


def build_parser() -> Parser:
    parser = Parser(
        prog="python -m tools.trace",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="The tracking server is MLFLOW_TRACKING_URI, else the `tracking:` section of "
        "params.yaml (start it with `make server`).",
    )
    parser.add_argument(
        "run_id",
        metavar="RUN",
        help="the MLflow run id (Run ID in the UI), a training output folder such as "
        "models/lstm (its mlflow_run.json), or a registered version, models:/<name>/<version> "
        "or models:/<name>@<alias>; an ensemble's members are traced too",
    )
    parser.add_argument(
        "--checkout",
        action="store_true",
        help="restore the run's commit and DVC data in this repository; "
        "refused on a dirty working tree",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="with --checkout: print the commands, run nothing"
    )
    parser.add_argument(
        "--allow-dirty-run",
        action="store_true",
        help="with --checkout: check out even if the run had uncommitted changes",
    )
    return parser


@cli_errors
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if (args.dry_run or args.allow_dirty_run) and not args.checkout:
        raise PipelineError("--dry-run and --allow-dirty-run only apply with --checkout")
    trace = fetch_trace(run_id_of(args.run_id))
    print(describe(trace), flush=True)
    for member, run_id in trace.members.items():
        print(f"\nmember {member}:\n" + describe(fetch_trace(run_id)), flush=True)
    if args.checkout:
        restore(trace, args.dry_run, args.allow_dirty_run)


if __name__ == "__main__":
    main()
