"""CSV and Excel files as Markdown tables, the way Dify's ``document-extractor`` renders them.

Pure: bytes in, text out, no I/O, no settings (safe to run in a confined child). Dify reads CSV with ``csv.reader``
and Excel with ``pandas.read_excel``; Sluice reads Excel with openpyxl and reproduces what pandas does to the
cells on the way (header from the first row, ``Unnamed: i`` and ``a.1`` column names, NA strings, numeric
columns with gaps turning to floats, ``nan`` for empty cells, rows of all-numeric frames upcast to float), so a
DSL sees the same text.
"""

from __future__ import annotations

import csv
import datetime
import io
import math
import zipfile
from typing import Any

#: pandas' default ``na_values``: these strings (and empty cells) read as NaN.
NA_STRINGS = frozenset(
    {
        "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
        "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
    }
)  # fmt: skip
NAN = float("nan")


class TableError(Exception):
    """The table could not be read (the message says why)."""


# -- CSV -------------------------------------------------------------------------------------------------------


def csv_markdown(text: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    return rows_to_markdown(rows)


def _cell(cell: str) -> str:
    return cell.replace("\n", " ").replace("\r", "")


def rows_to_markdown(rows: list[list[str]]) -> str:
    """Dify's ``_rows_to_markdown_table``: the dash row is as wide as each raw header text."""
    if not rows:
        return ""
    lines = [
        "| " + " | ".join(_cell(c) for c in rows[0]) + " |\n",
        "| " + " | ".join("-" * len(c) for c in rows[0]) + " |\n",
    ]
    lines.extend("| " + " | ".join(_cell(c) for c in row) + " |\n" for row in rows[1:])
    return "".join(lines)


# -- Excel -----------------------------------------------------------------------------------------------------


def check_zip(data: bytes, max_unpacked: int) -> None:
    """Refuse an Office file whose parts unpack to more than ``max_unpacked`` bytes (a zip bomb)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as error:
        raise TableError(f"File is not a zip file ({error})") from None
    if unpacked > max_unpacked:
        raise TableError(f"the file unpacks to more than {max_unpacked // (1024 * 1024)} MB")


def excel_markdown(data: bytes, *, max_cells: int, max_unpacked: int) -> str:
    """Every sheet as a Markdown table followed by a blank line; a sheet that fails to read is skipped."""
    import openpyxl  # imported here: only this format needs it

    check_zip(data, max_unpacked)
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many types on bad input
        raise TableError(str(error) or type(error).__name__) from None
    budget = [max_cells]
    tables = []
    try:
        for sheet in book.worksheets:
            try:
                table = _sheet_markdown(sheet, budget)
            except (TypeError, ValueError):
                continue
            tables.append(table + "\n\n")
    finally:
        book.close()
    return "".join(tables)


def _sheet_markdown(sheet: Any, budget: list[int]) -> str:
    rows = _sheet_rows(sheet, budget)
    columns, body = _frame(rows)
    header = "| " + " | ".join(columns) + " |"
    separator = "| " + " | ".join("-" * len(c) for c in columns) + " |"
    return "\n".join([header, separator, *("| " + " | ".join(r) + " |" for r in body)])


def _convert(cell: Any) -> Any:
    """pandas' openpyxl cell conversion: empty is "", errors NaN, integral numbers int."""
    value = cell.value
    if value is None:
        return ""
    if cell.data_type == "e":
        return NAN
    if cell.data_type == "n" and not isinstance(value, bool):
        as_int = int(value)
        return as_int if as_int == value else float(value)
    return value


def _sheet_rows(sheet: Any, budget: list[int]) -> list[list[Any]]:
    """pandas' ``get_sheet_data``: trailing empty cells and rows trimmed, rows padded to the widest."""
    if hasattr(sheet, "reset_dimensions"):
        sheet.reset_dimensions()
    data: list[list[Any]] = []
    last = -1
    for number, row in enumerate(sheet.rows):
        budget[0] -= max(1, len(row))
        if budget[0] < 0:
            raise TableError("the workbook has too many cells")
        values = [_convert(cell) for cell in row]
        while values and values[-1] == "":
            values.pop()
        if values:
            last = number
        data.append(values)
    data = data[: last + 1]
    if data:
        width = max(len(r) for r in data)
        data = [r + [""] * (width - len(r)) for r in data]
    return data


def _frame(rows: list[list[Any]]) -> tuple[list[str], list[list[str]]]:
    """Column names and the rendered cells of the rows that are not all NaN (``dropna(how="all")``)."""
    if not rows:  # pandas reads Excel with skip_blank_lines=False: blank rows stay (as NaN) until dropna
        return [], []
    header, data = rows[0], rows[1:]
    width = max([len(header), *(len(r) for r in data)])
    names = _column_names([*header, *[""] * (width - len(header))])
    columns = [[(r[i] if i < len(r) else "") for r in data] for i in range(width)]
    kinds_and_values = [_infer(column) for column in columns]
    kinds = {kind for kind, _ in kinds_and_values}
    # ``iterrows`` makes one Series per row: an all-numeric frame with a float column upcasts every cell to
    # float; otherwise the row is an object Series, which pandas re-infers as datetimes when every present
    # cell is one (its gaps then print as ``NaT``).
    upcast = kinds <= {"int", "float"} and "float" in kinds
    body = []
    for index in range(len(data)):
        cells = [(kind, values[index]) for kind, values in kinds_and_values]
        present = [v for _, v in cells if not _is_nan(v)]
        if not present:
            continue
        dated = all(isinstance(v, datetime.datetime) for v in present)
        body.append(
            ["NaT" if dated and _is_nan(v) else _render(v, "float" if upcast else kind) for kind, v in cells]
        )
    return [" ".join(n.splitlines()) for n in names], body


def _column_names(header: list[Any]) -> list[str]:
    """pandas' column names: ``Unnamed: i`` for blanks, ``a.1`` for repeats (values compared as Python does:
    ``True == 1``); an all-number header with a float and no repeats is a float index (``1`` reads ``1.0``)."""
    values: list[Any] = [
        f"Unnamed: {i}" if (isinstance(v, str) and v == "") or _is_nan(v) else v for i, v in enumerate(header)
    ]
    counts: dict[Any, int] = {}
    renamed = False
    for index, value in enumerate(values):
        count = counts.get(value, 0)
        while count > 0:  # pandas' _dedup_names
            counts[value] = count + 1
            value = f"{value}.{count}"
            renamed = True
            count = counts.get(value, 0)
        values[index] = value
        counts[value] = count + 1
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not renamed and len(numbers) == len(values) and any(isinstance(v, float) for v in numbers):
        values = [float(v) for v in values]
    return [_text(v) for v in values]


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _number(value: Any) -> int | float | None:
    """A value as pandas' ``maybe_convert_numeric`` reads it, or None when it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None
        return None if text.lower() in ("inf", "-inf", "+inf", "infinity", "-infinity") else number
    return None


def _infer(column: list[Any]) -> tuple[str, list[Any]]:
    """pandas' column type inference: NA strings to NaN, then all-numeric (booleans count as 0/1 once mixed with
    numbers or gaps; any gap makes floats) -> int/float, all-bool -> bool, all-datetime -> datetime (gaps ``NaT``), else object."""
    values = [NAN if isinstance(v, str) and v in NA_STRINGS else v for v in column]
    present = [v for v in values if not _is_nan(v)]
    gaps = len(present) < len(values)
    if present and all(isinstance(v, bool) for v in present) and not gaps:
        return "bool", values
    numbers = [int(v) if isinstance(v, bool) else _number(v) for v in present]
    if all(n is not None for n in numbers):
        converted = [NAN if _is_nan(v) else int(v) if isinstance(v, bool) else _number(v) for v in values]
        if gaps or any(isinstance(n, float) for n in converted):
            return "float", [float(n) if n is not None else NAN for n in converted]
        return "int", converted
    if present and all(isinstance(v, datetime.datetime) for v in present):
        return "datetime", values
    return "object", values


def _render(value: Any, kind: str) -> str:
    if kind == "float" and not _is_nan(value) and isinstance(value, int | float):
        return str(float(value))
    if kind == "datetime" and _is_nan(value):
        return "NaT"
    return " ".join(_text(value).splitlines()) if isinstance(value, str) else _text(value)


def _text(value: Any) -> str:
    if _is_nan(value):
        return "nan"
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    return str(value)
