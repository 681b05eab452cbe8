"""embed: placeholder until the word-vector module lands; passes the cleaned table on."""
from __future__ import annotations

from stages.lib.errors import cli_errors
from stages.lib.io import atomic_path, write_json
from stages.lib.params import project_path, stage_arg_parser, stage_params
from stages.lib.schema import read_table


@cli_errors
def main(argv: list[str] | None = None) -> None:
    args = stage_arg_parser("embed", "Embed cleaned headlines.").parse_args(argv)
    paths = stage_params("paths", args.params)
    frame = read_table(project_path(paths["cleaned"]), ["id", "title", "label", "tokens"])
    with atomic_path(project_path(paths["embedded_dir"])) as tmp:
        tmp.mkdir()
        frame.to_parquet(tmp / "headlines.parquet", index=False)
    with atomic_path(project_path(paths["hub_dir"])) as tmp:
        tmp.mkdir()
        (tmp / "README").write_text("hub modules land here\n")
    write_json({"rows": len(frame)}, project_path(paths["embed_metrics"]))


if __name__ == "__main__":
    main()
