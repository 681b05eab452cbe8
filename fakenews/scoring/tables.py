"""The tables batch scoring reads and writes, a chunk at a time.

Input: CSV, TSV or Parquet, one file or a folder of part files (as Spark, Hive or
`split` write them; names starting with `_` or `.`, such as _SUCCESS and .crc files, are
skipped). CSV cells are read as text, an empty cell as the empty string. Output: CSV (TSV
for .tsv/.tab) or Parquet (.parquet/.pq), written chunk by chunk to a temporary sibling and
renamed into place when complete, so a failure leaves no output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fakenews.data.io import atomic_path, csv_read_errors
from fakenews.data.schema import non_string_rows, require_columns
from fakenews.errors import PipelineError

PARQUET_SUFFIXES = {".parquet", ".pq"}
TAB_SUFFIXES = {".tsv", ".tab"}
ENCODING_FIX = "pass --encoding"


def separator_for(path: Path | str) -> str:
    """Tab for .tsv/.tab files (also compressed, e.g. .tsv.gz), comma otherwise."""
    return "\t" if TAB_SUFFIXES & {s.lower() for s in Path(path).suffixes} else ","


def format_of(path: Path | str) -> str:
    """parquet for .parquet/.pq names, csv (CSV or TSV) for anything else."""
    return "parquet" if PARQUET_SUFFIXES & {s.lower() for s in Path(path).suffixes} else "csv"


@dataclass(frozen=True)
class Chunk:
    file: Path  # the file it came from
    first_row: int  # its first row's position in that file, from 0 (after any header)
    frame: pd.DataFrame


@dataclass(frozen=True)
class InputTable:
    """One input, a file or a folder of part files, all of one format."""

    path: Path
    files: tuple[Path, ...]
    format: str  # csv | parquet
    sep: str
    encoding: str

    def columns(self) -> list[str]:
        """The column names (of the first file: part files share them)."""
        return list(next(self.chunks(rows=1, limit=1)).frame.columns)

    def chunks(self, rows: int, limit: int | None = None) -> Iterator[Chunk]:
        """The table, `rows` rows at a time, file by file; `limit` rows per file at most."""
        for file in self.files:
            read = _parquet_chunks if self.format == "parquet" else self._csv_chunks
            yield from read(file, rows, limit)

    def _csv_chunks(self, file: Path, rows: int, limit: int | None) -> Iterator[Chunk]:
        with csv_read_errors(file, self.encoding, ENCODING_FIX):
            reader = pd.read_csv(
                file,
                dtype=str,
                keep_default_na=False,
                sep=self.sep,
                encoding=self.encoding,
                chunksize=rows,
                nrows=limit,
            )
            with reader:
                first_row = 0
                for frame in reader:
                    yield Chunk(file, first_row, frame)
                    first_row += len(frame)
                if first_row == 0:  # a header line only: no chunk, but the columns count
                    yield Chunk(
                        file,
                        0,
                        pd.read_csv(file, dtype=str, sep=self.sep, encoding=self.encoding, nrows=0),
                    )


def _parquet_chunks(file: Path, rows: int, limit: int | None) -> Iterator[Chunk]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(file)
        first_row = 0
        for batch in parquet.iter_batches(batch_size=rows):
            if limit is not None and first_row >= limit:
                return
            yield Chunk(file, first_row, batch.to_pandas())
            first_row += batch.num_rows
        if first_row == 0:
            yield Chunk(file, 0, parquet.schema_arrow.empty_table().to_pandas())
    except (pa.ArrowException, OSError) as err:
        raise PipelineError(f"{file}: not a readable Parquet file: {err}") from None


def input_table(path: Path, sep: str | None = None, encoding: str = "utf-8") -> InputTable:
    """The table at `path` (a file, or a folder of part files of one format)."""
    if path.is_dir():
        files = tuple(
            sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(("_", ".")))
        )
        if not files:
            raise PipelineError(f"{path}: an empty folder; give a file or a folder of part files")
        formats = {format_of(p) for p in files}
        if len(formats) > 1:
            raise PipelineError(
                f"{path}: holds both Parquet and CSV part files; give a folder of one format"
            )
    elif path.is_file():
        files = (path,)
    else:
        raise PipelineError(f"{path}: file not found")
    return InputTable(path, files, format_of(files[0]), sep or separator_for(files[0]), encoding)


def bad_titles(
    frame: pd.DataFrame, column: str, chunk: Chunk | None = None, source: Path | str = "input"
) -> None:
    """PipelineError naming the file, column and rows when `column` is missing or holds a
    value that is not a string (a null or a number, possible in Parquet); rows counted from
    0 in their file."""
    where = chunk.file if chunk else source
    require_columns(frame, [column], where)
    bad = non_string_rows(frame[column].tolist(), chunk.first_row if chunk else 0)
    if bad:
        raise PipelineError(
            f"{where}, column '{column}': the title must be a string in every row; not in {bad}"
        )


def check_input(table: InputTable, title_column: str, rows: int) -> int:
    """Read the whole table once, as the in-process engine would, and fail on what it
    would fail on; the number of rows. The Spark engine runs this before starting Spark."""
    total = 0
    for chunk in table.chunks(rows):
        bad_titles(chunk.frame, title_column, chunk)
        total += len(chunk.frame)
    return total


@contextlib.contextmanager
def table_writer(target: Path, sep: str | None = None) -> Iterator[Callable[[pd.DataFrame], None]]:
    """A function appending frames to `target` (Parquet or CSV, by its name); the file
    appears, complete, when the block ends without an error."""
    if target.is_dir():  # atomic_path would replace the whole folder
        raise PipelineError(f"{target}: is a folder; give --output a file name")
    with atomic_path(target) as tmp:
        if format_of(target) == "parquet":
            with _parquet_appender(tmp) as append:
                yield append
        else:
            written = []

            def append(frame: pd.DataFrame) -> None:
                frame.to_csv(
                    tmp,
                    sep=sep or separator_for(target),
                    index=False,
                    mode="a" if written else "w",
                    header=not written,
                )
                written.append(len(frame))

            yield append


@contextlib.contextmanager
def _parquet_appender(tmp: Path) -> Iterator[Callable[[pd.DataFrame], None]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer: list[pq.ParquetWriter] = []

    def append(frame: pd.DataFrame) -> None:
        if not writer:
            writer.append(pq.ParquetWriter(tmp, pa.Schema.from_pandas(frame, preserve_index=False)))
        writer[0].write_table(
            pa.Table.from_pandas(frame, schema=writer[0].schema, preserve_index=False)
        )

    try:
        yield append
    finally:
        if writer:
            writer[0].close()
