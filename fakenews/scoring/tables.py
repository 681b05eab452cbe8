"""The tables batch scoring reads and writes, a chunk at a time.

Input: CSV, TSV or Parquet, one file or a folder of part files (as Spark, Hive or
`split` write them; names starting with `_` or `.`, such as _SUCCESS and .crc files, are
skipped; a subfolder is refused, never skipped unread). Columns are matched by name: every
part file must have the same set, in any order, and each chunk comes in the first file's
order. CSV cells are read as text, an empty cell as the empty string. Output: CSV (TSV for
.tsv/.tab) or Parquet (.parquet/.pq), written chunk by chunk to a temporary sibling and
renamed into place when complete, so a failure leaves no output; it replaces only an
earlier output of scoring (fakenews.scoring.outputs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fakenews.data.io import atomic_path, csv_read_errors
from fakenews.data.schema import non_string_rows, require_columns, shown_name
from fakenews.errors import PipelineError
from fakenews.scoring import outputs

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
    file_columns: tuple[tuple[str, ...], ...] = ()  # each file's, in its own order

    def columns(self) -> list[str]:
        """The column names, in the first file's order (every part file has the same set)."""
        if self.file_columns:
            return list(self.file_columns[0])
        return list(next(self.chunks(rows=1, limit=1)).frame.columns)

    def chunks(self, rows: int, limit: int | None = None) -> Iterator[Chunk]:
        """The table, `rows` rows at a time, file by file; `limit` rows per file at most;
        every chunk's columns in the first file's order."""
        order = list(self.file_columns[0]) if self.file_columns else None
        for file in self.files:
            read = _parquet_chunks if self.format == "parquet" else self._csv_chunks
            for chunk in read(file, rows, limit):
                if order and list(chunk.frame.columns) != order:
                    chunk = Chunk(chunk.file, chunk.first_row, chunk.frame[order])
                yield chunk

    def header(self, file: Path) -> tuple[str, ...]:
        """One file's column names, in its order, without reading its rows."""
        if self.format == "parquet":
            return tuple(_parquet_schema(file).names)
        with csv_read_errors(file, self.encoding, ENCODING_FIX):
            return tuple(map(str, self._csv_header_frame(file).columns))

    def _csv_header_frame(self, file: Path) -> pd.DataFrame:
        """The file's header as an empty frame of its columns."""
        return pd.read_csv(
            file, dtype=str, sep=self.sep, encoding=self.encoding, nrows=0, index_col=False
        )

    def _csv_chunks(self, file: Path, rows: int, limit: int | None) -> Iterator[Chunk]:
        with csv_read_errors(file, self.encoding, ENCODING_FIX):
            reader = pd.read_csv(
                file,
                dtype=str,
                keep_default_na=False,
                index_col=False,
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
                    yield Chunk(file, 0, self._csv_header_frame(file))


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


def _parquet_schema(file: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(file)
    except (pa.ArrowException, OSError) as err:
        raise PipelineError(f"{file}: not a readable Parquet file: {err}") from None


def input_table(path: Path, sep: str | None = None, encoding: str = "utf-8") -> InputTable:
    """The table at `path` (a file, or a folder of part files of one format with one set
    of columns)."""
    if path.is_dir():
        files = _part_files(path)
    elif path.is_file():
        files = (path,)
    else:
        raise PipelineError(f"{path}: file not found")
    table = InputTable(path, files, format_of(files[0]), sep or separator_for(files[0]), encoding)
    if len(files) == 1:
        return table
    headers = tuple(table.header(file) for file in files)
    for file, header in zip(files[1:], headers[1:], strict=True):
        _same_columns(files[0], headers[0], file, header)
    return InputTable(table.path, files, table.format, table.sep, encoding, headers)


def _part_files(folder: Path) -> tuple[Path, ...]:
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith(("_", ".")))
    nested = [p.name for p in entries if p.is_dir()]
    if nested:
        raise PipelineError(
            f"{folder}: holds the folder(s) {', '.join(nested)}; nested folders are not read, "
            "so give a folder of part files only (or each subfolder as its own --input)"
        )
    files = tuple(p for p in entries if p.is_file())
    if not files:
        raise PipelineError(f"{folder}: an empty folder; give a file or a folder of part files")
    if len({format_of(p) for p in files}) > 1:
        raise PipelineError(
            f"{folder}: holds both Parquet and CSV part files; give a folder of one format"
        )
    return files


def _same_columns(first: Path, first_header: tuple, other: Path, header: tuple) -> None:
    """Part files are matched by column name: the same set in any order, each name once."""
    for file, names in ((first, first_header), (other, header)):
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            shown = ", ".join(map(shown_name, repeated))
            raise PipelineError(f"{file}: the column(s) {shown} appear twice")
    if set(first_header) != set(header):
        only_first = sorted(set(first_header) - set(header))
        only_other = sorted(set(header) - set(first_header))
        differ = "; ".join(
            f"only {file.name} has {', '.join(map(shown_name, names))}"
            for file, names in ((first, only_first), (other, only_other))
            if names
        )
        raise PipelineError(
            f"{first.parent}: part files {first.name} and {other.name} have different columns "
            f"({differ}); every part file needs the same columns"
        )


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
    outputs.check_replaceable(target)
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
        if tmp.exists():
            outputs.mark_file(tmp, target)  # complete: ours, before it is renamed in
    outputs.settle_file(target)


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
