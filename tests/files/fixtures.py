"""Document fixtures built in the test run (no binary blobs): PDF by hand, DOCX with python-docx, XLSX with
openpyxl."""

from __future__ import annotations

import datetime
import io


def pdf(*pages: str) -> bytes:
    """A small valid PDF with one line of Helvetica text per page."""
    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{p} 0 R" for p in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for index, text in enumerate(pages):
        content_id = page_ids[index] + 1
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {content_id} 0 R >>".encode()
        )
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 18 Tf 72 700 Td ({escaped}) Tj ET".encode()
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def docx() -> bytes:
    import docx as python_docx

    document = python_docx.Document()
    document.add_paragraph("Quarterly report")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Region", "Sales"
    table.cell(1, 0).text, table.cell(1, 1).text = "North\nEast", "42"
    document.add_paragraph("The end")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def xlsx() -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sales"
    sheet.append(["Region", "Units", "Price", "Note", None, "Region"])
    sheet.append(["North", 3, 1.5, "two\nlines", None, "n"])
    sheet.append([None, None, None, None])  # a blank row: dropped, but it turns "Units" into floats
    sheet.append(["South", 4, 2, None, None, "s"])
    dates = book.create_sheet("Dates")
    dates.append(["When", "Done"])
    dates.append([datetime.datetime(2024, 5, 1, 12, 30), True])
    dates.append([datetime.datetime(2024, 5, 2), False])
    book.create_sheet("Empty")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


XLSX_TEXT = (
    "| Region | Units | Price | Note | Unnamed: 4 | Region.1 |\n"
    "| ------ | ----- | ----- | ---- | ---------- | -------- |\n"
    "| North | 3.0 | 1.5 | two lines | nan | n |\n"
    "| South | 4.0 | 2.0 | nan | nan | s |\n\n"
    "| When | Done |\n"
    "| ---- | ---- |\n"
    "| 2024-05-01 12:30:00 | True |\n"
    "| 2024-05-02 00:00:00 | False |\n\n"
    "|  |\n"
    "|  |\n\n"
)

DOCX_TEXT = "Quarterly report\n| Region | Sales |\n| --- | --- |\n| North<br>East | 42 |\n\nThe end"

CSV = b'name,notes\nAda,"line one\nline two"\nBob,\n'
CSV_TEXT = "| name | notes |\n| ---- | ----- |\n| Ada | line one line two |\n| Bob |  |\n"
