"""The recipients CSV: streamed from byte chunks, exact offsets and rows, clear errors."""

from __future__ import annotations

import csv
import io
import time
import tracemalloc
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatflow.domain.recipients_csv import (
    MAX_LINE_BYTES,
    CsvRecord,
    EmptyFile,
    Header,
    HeaderOnly,
    Recipient,
    RowProblem,
    check_header,
    parse_row,
    read_records,
)
from chatflow.errors import InvalidFile, ValidationFailed

BOM = b"\xef\xbb\xbf"
ICCID_1 = "8944500102198304826"  # 19 digits
ICCID_2 = "89445001021983048271"  # 20 digits
ICCID_3 = "8944500102198304838"
FULLWIDTH_ICCID = "".join(chr(0xFF10 + int(digit)) for digit in ICCID_1)  # Unicode digits, not ASCII

# A file with everything awkward at once: a BOM, CRLF, a quoted comma, a quoted newline,
# doubled quotes, multi-byte characters, an emoji, a blank line and no final newline.
AWKWARD = (
    BOM
    + (
        "iccid,first_name,note\r\n"
        f'{ICCID_1},"Smith, Zoë","said ""hi"" 😀"\r\n'
        f'{ICCID_2},Émile,"two\r\nlines"\r\n'
        "\r\n"
        f"{ICCID_3},Ana,é"
    ).encode()
)
AWKWARD_CELLS = [
    ["iccid", "first_name", "note"],
    [ICCID_1, "Smith, Zoë", 'said "hi" 😀'],
    [ICCID_2, "Émile", "two\r\nlines"],
    [ICCID_3, "Ana", "é"],
]


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    """The file as a stream of ``size``-byte chunks (a generator, like S3's iter_chunks)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def read(data: bytes, size: int | None = None) -> list[CsvRecord]:
    return list(read_records(chunked(data, size or max(len(data), 1))))


def load(data: bytes, variables: Sequence[str]) -> list[Recipient | RowProblem]:
    """What a loader does: header first, then one result per recipient row."""
    records = read_records(chunked(data, 5))
    header = check_header(next(records).cells, variables)
    results = [parse_row(header, record, variables) for record in records]
    if not results:
        raise HeaderOnly
    return results


def invalid_file(data: bytes) -> InvalidFile:
    with pytest.raises(InvalidFile) as caught:
        read(data)
    return caught.value


# --- reading records ---------------------------------------------------------------------


def test_records_are_the_cells_as_written_with_quoting_undone() -> None:
    # Given a file with a BOM, CRLF, quoted commas, newlines and doubled quotes
    # When it is read
    records = read(AWKWARD)
    # Then each record has its cells, unquoted, and the BOM is gone from the first name
    assert [record.cells for record in records] == AWKWARD_CELLS


def test_rows_count_lines_as_a_spreadsheet_shows_them() -> None:
    # Given a file whose third record has a quoted newline and is followed by a blank line
    # When it is read
    records = read(AWKWARD)
    # Then the header is row 1, the first recipient row 2, a quoted newline adds no row,
    # and the skipped blank line keeps its row number
    assert [record.row for record in records] == [1, 2, 3, 5]


def test_end_offsets_are_exact_byte_offsets_counting_the_bom() -> None:
    # Given a file with a BOM, CRLF and multi-byte characters
    # When it is read
    records = read(AWKWARD)
    # Then each end_offset is where the next record starts in the file's bytes
    header_end = len(BOM) + len(b"iccid,first_name,note\r\n")
    assert records[0].end_offset == header_end
    assert AWKWARD[records[0].end_offset :].startswith(ICCID_1.encode())
    assert AWKWARD[records[1].end_offset :].startswith(ICCID_2.encode())
    assert AWKWARD[records[2].end_offset :].startswith(b"\r\n" + ICCID_3.encode())
    assert records[3].end_offset == len(AWKWARD)


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_lf_crlf_and_lone_cr_all_end_lines(newline: bytes) -> None:
    # Given the same file written with each kind of line end, and a final one
    data = newline.join([b"iccid,name", ICCID_1.encode() + b",Ana", ICCID_2.encode() + b",Bo", b""])
    # When it is read
    records = read(data, 1)
    # Then the cells and rows are the same, with no line end left in a cell
    assert [record.cells for record in records] == [["iccid", "name"], [ICCID_1, "Ana"], [ICCID_2, "Bo"]]
    assert [record.row for record in records] == [1, 2, 3]
    assert records[-1].end_offset == len(data)


def test_a_last_line_without_a_newline_is_read() -> None:
    # Given a file whose last line has no line end
    # When it is read
    records = read(f"iccid\n{ICCID_1}".encode())
    # Then the last record is read and ends at the end of the file
    assert records[-1].cells == [ICCID_1]
    assert records[-1].end_offset == len(ICCID_1) + len("iccid\n")


def test_blank_lines_are_skipped_but_keep_their_row_numbers() -> None:
    # Given blank lines in the middle (empty, spaces, only commas) and at the end
    data = f"iccid,name\n\n{ICCID_1},Ana\n , \n,,\n{ICCID_2},Bo\n\n\r\n\n".encode()
    # When it is read
    records = read(data)
    # Then only the non-blank records are yielded, numbered as the spreadsheet shows them
    assert [(record.row, record.cells) for record in records] == [
        (1, ["iccid", "name"]),
        (3, [ICCID_1, "Ana"]),
        (6, [ICCID_2, "Bo"]),
    ]


def test_a_bom_is_removed_only_at_the_start_of_the_file() -> None:
    # Given a BOM at offset 0 and another one later, inside a value
    data = BOM + b"iccid,name\n" + ICCID_1.encode() + b"," + BOM + b"Ana\n"
    # When it is read
    records = read(data, 1)
    # Then the first is dropped and the second kept as written
    assert records[0].cells == ["iccid", "name"]
    assert records[1].cells == [ICCID_1, "\ufeffAna"]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, None])
def test_chunk_size_does_not_change_the_records(size: int | None) -> None:
    # Given the awkward file
    # When it is read in chunks of 1 byte, a few bytes, or whole
    records = read(AWKWARD, size)
    # Then the records, rows and offsets are the same
    assert records == read(AWKWARD)


@given(st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=60))
def test_any_chunking_gives_identical_records(sizes: list[int]) -> None:
    # Given the awkward file cut into chunks of arbitrary sizes, empty ones included
    chunks: list[bytes] = []
    start = 0
    for size in sizes:
        chunks.append(AWKWARD[start : start + size])
        start += size
    chunks.append(AWKWARD[start:])
    # When it is read
    records = list(read_records(iter(chunks)))
    # Then the records are those of the whole file
    assert records == read(AWKWARD)


@pytest.mark.parametrize("size", [1, 7, None])
def test_resuming_from_any_record_yields_exactly_the_remaining_records(size: int | None) -> None:
    # Given all records of the awkward file
    records = read(AWKWARD)
    for index, record in enumerate(records):
        # When reading resumes from a record's end, as with a ranged GET from end_offset
        rest = list(
            read_records(
                chunked(AWKWARD[record.end_offset :], size or len(AWKWARD)),
                start_offset=record.end_offset,
                start_row=record.row,
            )
        )
        # Then exactly the records after it come back, with the same rows and offsets
        assert rest == records[index + 1 :]


# Any text but NUL (a binary file) and U+FEFF (at offset 0 it is a BOM, dropped on purpose).
cell_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00\ufeff"), max_size=12
)
csv_rows = st.lists(
    st.lists(cell_text, min_size=1, max_size=4).filter(lambda cells: any(cell.strip() for cell in cells)),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150)
@given(csv_rows, st.sampled_from(["\n", "\r\n", "\r"]), st.booleans(), st.integers(min_value=1, max_value=9))
def test_any_file_csv_writes_reads_back_and_resumes_exactly(
    rows: list[list[str]], newline: str, bom: bool, size: int
) -> None:
    # Given any rows written by Python's csv writer, with any line end, maybe a BOM
    # (each row is written alone with "\r\n" so that any "\r" or "\n" in a value is quoted)
    lines: list[str] = []
    for cells in rows:
        text = io.StringIO()
        csv.writer(text, lineterminator="\r\n").writerow(cells)
        lines.append(text.getvalue().removesuffix("\r\n") + newline)
    data = (BOM if bom else b"") + "".join(lines).encode()
    # When it is read in small chunks
    records = read(data, size)
    # Then the cells are the rows written
    assert [record.cells for record in records] == rows
    # And reading on from any record's end gives exactly the rest
    for index, record in enumerate(records):
        rest = read_records(
            chunked(data[record.end_offset :], size), start_offset=record.end_offset, start_row=record.row
        )
        assert list(rest) == records[index + 1 :]


def test_reading_a_large_stream_keeps_memory_bounded() -> None:
    # Given a 200,000-row file produced as a stream of chunks, never as one bytes object
    rows = 200_000

    def stream() -> Iterator[bytes]:
        yield b"iccid,first_name,code\r\n"
        for start in range(0, rows, 500):
            yield b"".join(b'8944500102%09d,"Name, %d",%d\r\n' % (n, n, n) for n in range(start, start + 500))

    # When it is read to the end while memory is traced
    began = time.perf_counter()
    tracemalloc.start()
    try:
        count = 0
        last: CsvRecord | None = None
        for record in read_records(stream()):
            count += 1
            last = record
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Then every row is read, the last one numbered as such, with memory and time small
    assert count == rows + 1
    assert last is not None
    assert last.row == rows + 1
    assert last.cells == [f"8944500102{rows - 1:09d}", f"Name, {rows - 1}", str(rows - 1)]
    assert peak < 2 * 1024 * 1024
    # (about 2 s with tracemalloc on; the bound only catches quadratic work)
    assert time.perf_counter() - began < 10


# --- whole-file errors --------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", BOM, b"   ", b"\n\n\r\n", BOM + b" \n,,\n  \n"])
def test_an_empty_file_is_rejected_as_empty(data: bytes) -> None:
    # Given a file with no bytes, or only a BOM, whitespace and blank lines
    # When it is read
    with pytest.raises(EmptyFile) as caught:
        read(data)
    # Then it is an invalid_file error that says the file is empty
    assert caught.value.code == "invalid_file"
    assert "the file is empty" in caught.value.message


def test_resuming_at_the_end_of_a_file_is_not_an_empty_file() -> None:
    # Given a resume point at the very end of a file
    end = read(AWKWARD)[-1]
    # When reading resumes from there
    rest = list(read_records(iter([b""]), start_offset=end.end_offset, start_row=end.row))
    # Then there is simply nothing left
    assert rest == []


def test_a_header_only_file_has_no_records_after_the_header() -> None:
    # Given a file with a header row and nothing else
    data = b"iccid,first_name\r\n\r\n"
    # When the loader reads it
    with pytest.raises(HeaderOnly) as caught:
        load(data, ["first_name"])
    # Then it is rejected as an invalid file saying there are no recipients
    assert isinstance(caught.value, InvalidFile)
    assert caught.value.code == "invalid_file"
    assert "no recipients" in caught.value.message


def test_a_binary_file_is_rejected_at_its_first_nul_byte() -> None:
    # Given a binary file (here a zip, as an .xlsx is)
    data = b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256))
    # When it is read
    error = invalid_file(data)
    # Then the message says it is not a text CSV, where, and how to save it
    assert "NUL byte" in error.message
    assert "byte 5" in error.message
    assert "UTF-8" in error.message


def test_a_utf16_file_is_rejected_as_binary() -> None:
    # Given a CSV saved as UTF-16 ("Unicode Text" in Excel)
    data = f"iccid\n{ICCID_1}\n".encode("utf-16")
    # When it is read
    error = invalid_file(data)
    # Then it is refused, with the advice to save as UTF-8
    assert "UTF-16" in error.message
    assert "CSV UTF-8" in error.message


def test_a_latin1_file_is_rejected_saying_where_and_to_save_as_utf8() -> None:
    # Given a file saved as Latin-1, with "é" on row 3
    data = f"iccid,first_name\n{ICCID_1},Ana\n{ICCID_2},Zoé\n".encode("latin-1")
    # When it is read in small chunks
    with pytest.raises(InvalidFile) as caught:
        list(read_records(chunked(data, 3)))
    # Then the message gives the byte offset and the row, and says to export as CSV UTF-8
    message = caught.value.message
    offset = data.index("é".encode("latin-1"))
    assert "not UTF-8" in message
    assert f"byte {offset} (row 3)" in message
    assert "CSV UTF-8" in message


def test_a_record_longer_than_the_limit_is_rejected_with_its_row() -> None:
    # Given a second row longer than MAX_LINE_BYTES
    data = b"iccid,note\n" + ICCID_1.encode() + b"," + b"x" * MAX_LINE_BYTES + b"\n"
    # When it is read, even byte by byte
    with pytest.raises(InvalidFile) as caught:
        list(read_records(chunked(data, 1)))
    # Then the message names the row and the limit
    assert "row 2 is longer than 64 KiB" in caught.value.message


def test_a_record_of_exactly_the_limit_is_accepted() -> None:
    # Given a row of exactly MAX_LINE_BYTES bytes, its line end included
    row = ICCID_1.encode() + b","
    row += b"x" * (MAX_LINE_BYTES - len(row) - 1) + b"\n"
    assert len(row) == MAX_LINE_BYTES
    # When it is read
    records = read(b"iccid,note\n" + row + row[:-2] + b"\n")
    # Then it is a record like any other
    assert len(records[1].cells[1]) == MAX_LINE_BYTES - len(ICCID_1) - 2


def test_a_quoted_value_running_past_the_limit_is_rejected() -> None:
    # Given a quote opened on row 2 and never closed, with many lines after it
    data = b"iccid,note\n" + ICCID_1.encode() + b',"oops\n' + (ICCID_2.encode() + b",fine\n") * 5000
    # When it is read
    error = invalid_file(data)
    # Then the file is rejected at row 2 before the whole rest is held in memory
    assert "row 2" in error.message
    assert "never closed" in error.message


def test_an_unterminated_quote_at_the_end_is_rejected_with_its_row() -> None:
    # Given a quote opened on row 3 and still open at the end of the file
    data = f'iccid,note\n{ICCID_1},ok\n{ICCID_2},"open\nstill open\n'.encode()
    # When it is read
    error = invalid_file(data)
    # Then the message says which row's quote is never closed
    assert error.message.startswith("row 3: a quoted value is never closed")


# --- the header ---------------------------------------------------------------------------


def test_the_header_gives_columns_stripped_and_where_iccid_is() -> None:
    # Given a header with spaces around names
    # When it is checked against the template's variables
    header = check_header([" first_name ", "iccid", " code"], ["code", "first_name"])
    # Then the columns are stripped and iccid is found
    assert header.columns == ("first_name", "iccid", "code")
    assert header.iccid_index == 1


def test_iccid_is_found_whatever_its_case() -> None:
    # Given a header that writes ICCID in capitals
    # When it is checked
    header = check_header(["ICCID", "name"], ["name"])
    # Then it is the iccid column
    assert header.iccid_index == 0


def test_a_header_without_iccid_is_rejected() -> None:
    # Given a header with no iccid column
    # When it is checked
    with pytest.raises(InvalidFile) as caught:
        check_header(["sim", "first_name"], ["first_name"])
    # Then the message says iccid is required and what was found
    assert "no iccid column" in caught.value.message
    assert "'sim'" in caught.value.message


def test_a_file_without_a_header_row_is_told_to_add_one() -> None:
    # Given a file whose first row is data
    # When its first row is checked as the header
    with pytest.raises(InvalidFile) as caught:
        check_header([ICCID_1, "Ana"], [])
    # Then the message suggests adding a header row
    assert "add a header row" in caught.value.message


def test_an_empty_header_is_rejected() -> None:
    # Given a header whose cells are all empty
    # When it is checked
    # Then it is refused as empty
    with pytest.raises(InvalidFile, match="header row is empty"):
        check_header(["", " "], [])


def test_missing_variable_columns_reject_the_file_naming_them() -> None:
    # Given a template using three variables and a file with only one of them
    # When the header is checked
    with pytest.raises(InvalidFile) as caught:
        check_header(["iccid", "city"], ["first_name", "city", "code"])
    # Then the message names the missing variables and columns, in template order
    assert caught.value.message.startswith(
        "the template uses {{first_name}}, {{code}} but the file has no column first_name, code"
    )


def test_column_names_are_case_sensitive_and_the_message_says_so() -> None:
    # Given a column whose name differs from the variable only in case
    # When the header is checked
    with pytest.raises(InvalidFile) as caught:
        check_header(["iccid", "First_Name"], ["first_name"])
    # Then the file is refused, pointing at the near miss
    assert "no column first_name" in caught.value.message
    assert "First_Name for first_name" in caught.value.message


@pytest.mark.parametrize(
    ("cells", "named"),
    [(["iccid", "name", "name"], "name"), (["iccid", "ICCID"], "iccid"), (["iccid", "a", " a "], "a")],
)
def test_duplicate_columns_are_rejected_naming_them(cells: list[str], named: str) -> None:
    # Given a header naming a column twice
    # When it is checked
    with pytest.raises(InvalidFile) as caught:
        check_header(cells, [])
    # Then the message names the duplicate
    assert f"more than once: {named};" in caught.value.message


def test_columns_without_a_name_are_allowed_and_ignored() -> None:
    # Given a header with empty names (a trailing comma from a spreadsheet)
    # When it is checked
    header = check_header(["iccid", "", "name", ""], ["name"])
    # Then it is accepted
    assert header.columns == ("iccid", "", "name", "")


def test_a_template_variable_named_iccid_is_the_iccid_column() -> None:
    # Given a template that uses {{iccid}} and a header that writes it ICCID
    header = check_header(["ICCID"], ["iccid"])
    # When a row is parsed
    result = parse_row(header, CsvRecord([ICCID_1], 2, 0), ["iccid"])
    # Then the variable gets the ICCID
    assert result == Recipient(iccid=ICCID_1, values={"iccid": ICCID_1}, row=2)


# --- rows ---------------------------------------------------------------------------------

HEADER = Header(columns=("iccid", "first_name", "code", "unused"), iccid_index=0)
VARIABLES = ("first_name", "code")


def row(*cells: str, number: int = 2) -> CsvRecord:
    return CsvRecord(cells=list(cells), row=number, end_offset=0)


def test_a_good_row_is_a_recipient_with_the_used_values_stripped() -> None:
    # Given a row with spaces around values and an unused column
    # When it is parsed
    result = parse_row(HEADER, row(f" {ICCID_1} ", " Ana ", "12", "", number=7), VARIABLES)
    # Then it is a recipient with only the template's values
    assert result == Recipient(iccid=ICCID_1, values={"first_name": "Ana", "code": "12"}, row=7)


@pytest.mark.parametrize("iccid", [ICCID_1, ICCID_2])
def test_iccids_of_19_and_20_digits_are_accepted(iccid: str) -> None:
    # Given a row with a 19- or 20-digit ICCID
    # When it is parsed
    result = parse_row(HEADER, row(iccid, "Ana", "1", "x"), VARIABLES)
    # Then it is a recipient
    assert isinstance(result, Recipient)
    assert result.iccid == iccid


@pytest.mark.parametrize(
    ("iccid", "message"),
    [
        ("123", "iccid '123' is not 19-20 digits"),
        ("894450010219830482", "iccid '894450010219830482' is not 19-20 digits"),
        ("894450010219830482A", "iccid '894450010219830482A' is not 19-20 digits"),
        ("894450010219830482711", "iccid '894450010219830482711' is not 19-20 digits"),
        ("8944 5001 0219 8304 826", "iccid '8944 5001 0219 8304 826' is not 19-20 digits"),
        (FULLWIDTH_ICCID, "is not 19-20 digits"),
        ("", "iccid is empty"),
        ("8.94450010219830E+18", "format the column as text"),
    ],
)
def test_bad_iccids_are_row_problems(iccid: str, message: str) -> None:
    # Given a row whose ICCID is short, long, not digits, empty or turned into a number
    # When it is parsed
    result = parse_row(HEADER, row(iccid, "Ana", "1", "x", number=4), VARIABLES)
    # Then it is a problem on that row saying what is wrong
    assert isinstance(result, RowProblem)
    assert result.row == 4
    assert message in result.message


def test_an_empty_value_for_a_used_variable_is_a_row_problem() -> None:
    # Given a row whose first_name is only spaces
    # When it is parsed
    result = parse_row(HEADER, row(ICCID_1, "  ", "1", ""), VARIABLES)
    # Then it is a problem naming the variable
    assert result == RowProblem(2, "first_name is empty")


def test_every_problem_of_a_row_is_listed() -> None:
    # Given a row with a bad ICCID and two empty values
    # When it is parsed
    result = parse_row(HEADER, row("12", "", "", "x"), VARIABLES)
    # Then the message lists all three
    assert result == RowProblem(2, "iccid '12' is not 19-20 digits; first_name is empty; code is empty")


@pytest.mark.parametrize("cells", [(ICCID_1, "Ana", "1"), (ICCID_1, "Ana", "1", "x", "extra")])
def test_a_row_with_a_different_number_of_cells_is_a_problem(cells: tuple[str, ...]) -> None:
    # Given a row with fewer or more cells than the header
    # When it is parsed
    result = parse_row(HEADER, row(*cells), VARIABLES)
    # Then it is a problem giving both counts
    assert isinstance(result, RowProblem)
    assert result.message.startswith(f"the row has {len(cells)} cells, the header 4")


def test_a_whole_awkward_file_loads_with_problems_listed_by_row() -> None:
    # Given a file mixing good rows, bad ICCIDs, an empty value, an unquoted comma and blanks
    data = (
        BOM
        + (
            "iccid,first_name,note\r\n"
            f'{ICCID_1},"Smith, Zoë",x\r\n'
            "123,Ana,x\r\n"
            f"{ICCID_2},,x\r\n"
            f"{ICCID_3},Smith, John,x\r\n"
            "\r\n"
            f'{ICCID_3},"Zoë ""Z""",\r\n'
            "\r\n"
        ).encode()
    )
    # When it is loaded
    results = load(data, ["first_name"])
    # Then good rows are recipients and bad ones problems, each with its spreadsheet row
    assert results == [
        Recipient(ICCID_1, {"first_name": "Smith, Zoë"}, 2),
        RowProblem(3, "iccid '123' is not 19-20 digits"),
        RowProblem(4, "first_name is empty"),
        RowProblem(5, "the row has 4 cells, the header 3 (a value with a comma must be in double quotes)"),
        Recipient(ICCID_3, {"first_name": 'Zoë "Z"'}, 7),
    ]


def test_file_errors_are_validation_errors_with_the_invalid_file_code() -> None:
    # Given an unreadable file
    # When it is read
    with pytest.raises(ValidationFailed) as caught:
        read(b"\x00")
    # Then the error maps to 400 invalid_file
    assert caught.value.code == "invalid_file"
