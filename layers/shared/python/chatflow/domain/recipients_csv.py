"""The recipients CSV of a campaign, read as a stream (CONTRACT.md §5).

The file is UTF-8 (a BOM is fine), comma-separated with RFC 4180 quoting (quoted commas,
doubled quotes, newlines inside quotes), with a header row. Column ``iccid`` is required;
the other columns are template variables.

How a loader uses this module::

    records = read_records(s3_body.iter_chunks())   # no record at all: EmptyFile
    header = check_header(next(records).cells, template.variables)
    for record in records:                          # none after the header: raise HeaderOnly()
        result = parse_row(header, record, template.variables)   # Recipient | RowProblem
        ...checkpoint (record.end_offset, record.row) now and then...

and after a restart, with a ranged GET from the checkpoint and the header read again::

    read_records(body_from(offset), start_offset=offset, start_row=row)  # next row is row + 1 or later

Decisions:

- **Streaming.** ``read_records`` takes byte chunks of any size and never holds more than
  one record (at most ``MAX_LINE_BYTES``) plus one chunk. Byte offsets are exact, so a
  loader can stop after any record and resume from its ``end_offset``.
- **Rows** are numbered as a spreadsheet shows them: the first line of the file is row 1
  (normally the header), a newline inside a quoted value does not start a row, and blank
  lines count. ``start_row`` is the row of the record that ends at ``start_offset``
  (0 at the start of the file).
- **Blank lines** (no cells, or only empty / whitespace cells such as ``,,,``) are skipped:
  they are neither yielded nor a row problem, but they keep their row number.
- **Line ends**: ``\\n``, ``\\r\\n`` and a lone ``\\r`` (old Mac exports); the last line
  needs none.
- **Header matching**: column names are stripped and matched exactly (case-sensitive, like
  template variables), except ``iccid``, which is found whatever its case (``ICCID``).
  Columns with an empty name are allowed and ignored; two columns with the same name are
  an error.
- **Whole-file errors** (``InvalidFile``, raised while reading): invalid UTF-8, a NUL byte
  (binary, UTF-16 or a spreadsheet file), a record over ``MAX_LINE_BYTES``, a quote never
  closed at the end of the file, an empty file (``EmptyFile``). They can surface after
  earlier records were read; a header-only file (``HeaderOnly``) is found by the caller.
- **Row problems** (``RowProblem``, the row is skipped): a bad ICCID, an empty value for a
  variable the template uses, a cell count different from the header's.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from chatflow.errors import InvalidFile

# A record longer than this rejects the file: it protects the loader's memory.
MAX_LINE_BYTES = 64 * 1024
ICCID_COLUMN = "iccid"

_BOM = b"\xef\xbb\xbf"
_ICCID = re.compile(r"[0-9]{19,20}")
# How spreadsheets show a long number they have turned into a float: 8.9441E+18.
_SCIENTIFIC = re.compile(r"[0-9.,]+[eE]\+?[0-9]+")
_SAVE_AS_UTF8 = 'save it as UTF-8 (in Excel: "CSV UTF-8 (Comma delimited)") and upload it again'


class EmptyFile(InvalidFile):
    """The file has no bytes, or only a BOM, whitespace and blank lines."""

    def __init__(
        self,
        message: str = "the file is empty: upload a CSV with a header row (iccid and the template's "
        "variables) and one row per recipient",
    ) -> None:
        super().__init__(message)


class HeaderOnly(InvalidFile):
    """The file has a header row and no recipient rows (raised by the caller, who counts)."""

    def __init__(
        self,
        message: str = "the file has a header row but no recipients: add one row per recipient under it",
    ) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class CsvRecord:
    """One CSV record: its cells as written, its row, and the byte offset just after it."""

    cells: list[str]
    row: int
    end_offset: int


@dataclass(frozen=True)
class Header:
    """The header row: column names stripped, and where ``iccid`` is."""

    columns: tuple[str, ...]
    iccid_index: int
    _indexes: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        indexes = {name: index for index, name in enumerate(self.columns) if name}
        # {{iccid}} in a template is the iccid column, whatever case the header writes it in.
        indexes[ICCID_COLUMN] = self.iccid_index
        object.__setattr__(self, "_indexes", indexes)

    def __contains__(self, column: object) -> bool:
        return column in self._indexes

    def index(self, column: str) -> int:
        """The position of ``column``; ``KeyError`` if the header has no such column."""
        return self._indexes[column]


@dataclass(frozen=True)
class Recipient:
    iccid: str
    values: dict[str, str]  # only the columns the template uses, stripped
    row: int


@dataclass(frozen=True)
class RowProblem:
    row: int
    message: str


def read_records(
    chunks: Iterable[bytes], *, start_offset: int = 0, start_row: int = 0
) -> Iterator[CsvRecord]:
    """Yield the non-blank records of a CSV file given as byte chunks of any size.

    ``chunks`` start at byte ``start_offset`` of the file (0, or a record's ``end_offset``
    when resuming); ``start_row`` is the row of the record that ends there (0 at the start),
    so the first record yielded is row ``start_row + 1`` or later. A BOM is dropped only at
    offset 0, and only there is a file without records an ``EmptyFile``.
    """
    reader = _Reader(start_offset, start_row)
    yield from reader.records(chunks)


class _Reader:
    """Splits bytes into lines, lets ``csv`` join them into records, and counts bytes and rows.

    ``csv.reader`` pulls one line at a time and only as many as the record needs, so when it
    returns a record, the bytes handed to it so far end exactly at that record's end.
    """

    def __init__(self, start_offset: int, start_row: int) -> None:
        self.at_start = start_offset == 0
        self.offset = start_offset  # file offset of the first byte not yet given to csv
        self.record_start = start_offset
        self.row = start_row

    def records(self, chunks: Iterable[bytes]) -> Iterator[CsvRecord]:
        found = False
        try:
            for cells in csv.reader(self._lines(chunks), dialect="excel", strict=False):
                self.row += 1
                self.record_start = self.offset
                if all(not cell.strip() for cell in cells):
                    continue
                found = True
                yield CsvRecord(cells=cells, row=self.row, end_offset=self.offset)
        except csv.Error as exc:  # not expected: _lines hands csv one line at a time, no NUL
            raise InvalidFile(f"row {self.row + 1} cannot be read as CSV ({exc})") from exc
        if self.at_start and not found:
            raise EmptyFile

    def _lines(self, chunks: Iterable[bytes]) -> Iterator[str]:
        """Each line with its end (``\\n``, ``\\r\\n`` or ``\\r``), decoded, counted in ``offset``."""
        pending = bytearray()  # the start of a line whose end has not arrived yet
        for chunk in self._without_bom(chunks):
            if pending.endswith(b"\r") and not chunk.startswith(b"\n"):
                line = bytes(pending)  # a lone "\r" ended that line
                pending.clear()
                yield self._decode(line)
            nul = chunk.find(b"\x00")
            if nul >= 0:
                raise InvalidFile(
                    f"the file is not a text CSV: byte {self.offset + len(pending) + nul} is a NUL byte "
                    f"(a binary, UTF-16 or spreadsheet file?); {_SAVE_AS_UTF8}"
                )
            if b"\n" not in chunk and b"\r" not in chunk:
                pending += chunk
                self._check_size(len(pending))
                continue
            if pending:
                pending += chunk
                data = bytes(pending)
                pending.clear()
            else:
                data = chunk
            lines = data.splitlines(keepends=True)
            # The last line may go on in the next chunk, and a final "\r" may be half of "\r\n".
            if not lines[-1].endswith(b"\n"):
                pending += lines.pop()
            for line in lines:
                yield self._decode(line)
            self._check_size(len(pending))
        if pending:
            yield self._decode(bytes(pending))
        if self.offset > self.record_start:
            # csv asked for more after the last line: a quoted value is still open.
            raise InvalidFile(
                f"row {self.row + 1}: a quoted value is never closed (the file ends inside quotes); "
                'close it with " or double the quotes inside it ("")'
            )

    def _without_bom(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The chunks, minus a UTF-8 BOM at offset 0 (counted in ``offset``), skipping empty ones."""
        head = b""
        iterator = iter(chunks)
        if self.at_start:
            for chunk in iterator:
                head += chunk
                if len(head) >= len(_BOM) or not _BOM.startswith(head):
                    break
            if head.startswith(_BOM):
                head = head[len(_BOM) :]
                self.offset += len(_BOM)
                self.record_start = self.offset
            if head:
                yield head
        for chunk in iterator:
            if chunk:
                yield chunk

    def _decode(self, line: bytes) -> str:
        self._check_size(len(line))
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidFile(
                f"the file is not UTF-8: byte {self.offset + exc.start} (row {self.row + 1}) is not valid "
                f"UTF-8; {_SAVE_AS_UTF8}"
            ) from exc
        self.offset += len(line)
        return text

    def _check_size(self, more: int) -> None:
        """Refuse to hold more than MAX_LINE_BYTES of the current record."""
        if self.offset - self.record_start + more > MAX_LINE_BYTES:
            raise InvalidFile(
                f"row {self.row + 1} is longer than {MAX_LINE_BYTES // 1024} KiB: check for a quote that is "
                "never closed, or shorten the row"
            )


def check_header(cells: Sequence[str], variables: Sequence[str]) -> Header:
    """Check the header row against the template's variables; ``InvalidFile`` says what to fix."""
    columns = tuple(cell.strip() for cell in cells)
    if not any(columns):
        raise InvalidFile("the header row is empty: the first row must name the columns, one of them iccid")
    iccids = [index for index, name in enumerate(columns) if name.lower() == ICCID_COLUMN]
    if not iccids:
        hint = " (the first row looks like data: add a header row)" if _ICCID.fullmatch(columns[0]) else ""
        raise InvalidFile(
            f"the file has no iccid column{hint}: the first row must be a header naming the columns, "
            f"one of them iccid; found {', '.join(repr(name) for name in columns[:10])}"
            f"{', ...' if len(columns) > 10 else ''}"
        )
    seen: set[str] = set()
    duplicates: dict[str, None] = {}
    for name in columns:
        key = ICCID_COLUMN if name.lower() == ICCID_COLUMN else name
        if key and key in seen:
            duplicates[key] = None
        seen.add(key)
    if duplicates:
        raise InvalidFile(
            f"the header names a column more than once: {', '.join(duplicates)}; give each column one name"
        )
    header = Header(columns=columns, iccid_index=iccids[0])
    missing = [name for name in dict.fromkeys(variables) if name not in header]
    if missing:
        by_case = {name.lower(): name for name in columns}
        near = [f"{by_case[name.lower()]} for {name}" for name in missing if name.lower() in by_case]
        hint = f" (the file has {', '.join(near)}: names must match the template exactly)" if near else ""
        raise InvalidFile(
            f"the template uses {', '.join('{{' + name + '}}' for name in missing)} but the file has no "
            f"column {', '.join(missing)}{hint}; add the columns to the header row"
        )
    return header


def parse_row(header: Header, record: CsvRecord, variables: Sequence[str]) -> Recipient | RowProblem:
    """The recipient on ``record``, or every problem that makes the row unusable.

    ``header`` is what ``check_header`` returned for the same ``variables``.
    """
    cells = record.cells
    if len(cells) != len(header.columns):
        return RowProblem(
            record.row,
            f"the row has {len(cells)} cells, the header {len(header.columns)} "
            "(a value with a comma must be in double quotes)",
        )
    problems: list[str] = []
    iccid = cells[header.iccid_index].strip()
    if not iccid:
        problems.append("iccid is empty")
    elif not _ICCID.fullmatch(iccid):
        shown = iccid if len(iccid) <= 40 else iccid[:37] + "..."
        hint = " (a spreadsheet turned it into a number: format the column as text)"
        problems.append(f"iccid {shown!r} is not 19-20 digits{hint if _SCIENTIFIC.fullmatch(iccid) else ''}")
    values: dict[str, str] = {}
    for name in dict.fromkeys(variables):
        value = cells[header.index(name)].strip()
        if not value:
            problems.append(f"{name} is empty")
        values[name] = value
    if problems:
        return RowProblem(record.row, "; ".join(problems))
    return Recipient(iccid=iccid, values=values, row=record.row)
