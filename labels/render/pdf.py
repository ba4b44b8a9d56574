"""PDF labels: one label per page (roll printers) or a grid on A4 sheets.

The document is written as it is drawn: each page goes to the output as soon as it is full,
so memory holds one page and an offset per object, however many labels there are. Pages
draw the shapes of :func:`labels.render.preview.layout_label`, the same layout as the
previews: text in Helvetica (WinAnsi), or in Adobe's STSong-Light where Helvetica cannot show
it (see :func:`labels.render.layout.font_for`).
"""

from __future__ import annotations

import io
import zlib
from array import array
from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO

from labels.render.layout import CJK_FONT, FONT, PT_PER_MM, font_for, printable
from labels.render.preview import Box, layout_label
from labels.render.templates import LabelError, Template

MM = PT_PER_MM
A4 = (210.0, 297.0)
#: pages per intermediate node of the page tree
PAGES_PER_NODE = 128


def _pdf_text(text: str) -> tuple[bytes, bytes]:
    """(font resource, PDF string) that show *text*: WinAnsi for Helvetica, else UCS-2 for
    the Chinese font.

    Raises
    ------
    LabelError
        For a character neither font can address (outside the Basic Multilingual Plane, such
        as an emoji): printing a wrong glyph would be worse.
    """
    normal = printable(text)
    if font_for(text) == FONT:
        raw = normal.encode("cp1252")
        escaped = raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
        return b"F1", b"(" + escaped.replace(b"\r", b"\\r").replace(b"\n", b"\\n") + b")"
    for char in normal:
        if ord(char) > 0xFFFF:
            raise LabelError(
                f"character {char!r} (U+{ord(char):04X}) in {text!r} cannot be printed on a PDF label"
            )
    return b"F2", b"<" + normal.encode("utf-16-be").hex().upper().encode() + b">"


def label_operators(
    template: Template,
    values: Mapping[str, Any],
    ox: float,
    oy: float,
    page_h: float,
    fonts: set[bytes] | None = None,
) -> bytes:
    """PDF content-stream operators drawing one label with its top-left corner at
    (*ox*, *oy*) mm from the top-left of a page *page_h* mm high. The font resources the
    text uses are added to *fonts*."""
    rects: list[str] = []
    texts: list[bytes] = []
    for shape in layout_label(template, values):
        if isinstance(shape, Box):
            rects.append(
                f"{(ox + shape.x) * MM:.3f} {(page_h - oy - shape.y - shape.h) * MM:.3f} "
                f"{shape.w * MM:.3f} {shape.h * MM:.3f} re"
            )
        else:
            font, string = _pdf_text(shape.text)
            if fonts is not None:
                fonts.add(font)
            texts.append(
                b"BT /%s %.2f Tf %.3f %.3f Td %s Tj ET"
                % (font, shape.size_pt, (ox + shape.x) * MM, (page_h - oy - shape.baseline) * MM, string)
            )
    ops = texts
    if rects:
        ops = [("\n".join(rects) + "\nf").encode(), *texts]
    return b"\n".join(ops)


def _pdf_value(value: object) -> bytes:
    """A PDF object from Python data: names and strings given in PDF syntax, numbers,
    lists and dicts."""
    if isinstance(value, dict):
        return b"<< " + b" ".join(b"/%s %s" % (k.encode(), _pdf_value(v)) for k, v in value.items()) + b" >>"
    if isinstance(value, list | tuple):
        return b"[" + b" ".join(_pdf_value(v) for v in value) + b"]"
    return str(value).encode()


class PdfStreamWriter:
    """A PDF 1.4 document written page by page to a binary stream.

    Every page has the same size; pages inherit the size and the font from the page tree.
    """

    def __init__(self, out: BinaryIO, width_mm: float, height_mm: float, *, compress: bool = True) -> None:
        self.out = out
        self.compress = compress
        self.written = 0
        #: byte offset of every object, by object number (0 is the free-list head)
        self.offsets = array("Q", [0])
        self.catalog, self.root, self.font = self._new(), self._new(), self._new()
        self.nodes: list[tuple[int, int]] = []  # (object number, page count) of tree nodes
        self.node: int | None = None
        self.node_kids: list[int] = []
        self.pages = 0
        #: font resources the pages use (F1 Helvetica always exists; F2 only if used)
        self.fonts: set[bytes] = set()
        self._write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        self._object(
            self.font, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
        )
        self.media_box = b"[0 0 %.3f %.3f]" % (width_mm * MM, height_mm * MM)

    def _new(self) -> int:
        self.offsets.append(0)
        return len(self.offsets) - 1

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.written += len(data)

    def _object(self, number: int, body: bytes) -> None:
        self.offsets[number] = self.written
        self._write(b"%d 0 obj\n%s\nendobj\n" % (number, body))

    def add_page(self, content: bytes) -> None:
        """Write one page whose content stream is *content*."""
        if self.node is None:
            self.node = self._new()
        page, stream = self._new(), self._new()
        data = zlib.compress(content, 6) if self.compress else content
        filters = b"/Filter /FlateDecode " if self.compress else b""
        self._object(stream, b"<< %s/Length %d >>\nstream\n%s\nendstream" % (filters, len(data), data))
        self._object(page, b"<< /Type /Page /Parent %d 0 R /Contents %d 0 R >>" % (self.node, stream))
        self.node_kids.append(page)
        self.pages += 1
        if len(self.node_kids) == PAGES_PER_NODE:
            self._close_node()

    def _close_node(self) -> None:
        if self.node is None:
            return
        kids = b" ".join(b"%d 0 R" % k for k in self.node_kids)
        self._object(
            self.node,
            b"<< /Type /Pages /Parent %d 0 R /Kids [%s] /Count %d >>"
            % (self.root, kids, len(self.node_kids)),
        )
        self.nodes.append((self.node, len(self.node_kids)))
        self.node, self.node_kids = None, []

    def _cjk_font(self) -> int:
        """Write the Chinese font (not embedded: readers supply Adobe's Asian fonts) with
        the metrics reportlab ships for it; returns its object number."""
        from reportlab.pdfbase._cidfontdata import CIDFontInfo

        info = CIDFontInfo[CJK_FONT]["DescendantFonts"][0]
        font, descendant, descriptor = self._new(), self._new(), self._new()
        self._object(descriptor, _pdf_value(info["FontDescriptor"]))
        cid = {k: v for k, v in info.items() if k != "FontDescriptor"}
        cid["FontDescriptor"] = f"{descriptor} 0 R"
        self._object(descendant, _pdf_value(cid))
        self._object(
            font,
            b"<< /Type /Font /Subtype /Type0 /BaseFont /%s-UniGB-UCS2-H "
            b"/Encoding /UniGB-UCS2-H /DescendantFonts [%d 0 R] >>" % (CJK_FONT.encode(), descendant),
        )
        return font

    def close(self) -> None:
        """Write the page tree, the catalog, the cross-reference table and the trailer."""
        if not self.pages:
            raise LabelError("no labels to print")
        self._close_node()
        kids = b" ".join(b"%d 0 R" % n for n, _ in self.nodes)
        fonts = b"/F1 %d 0 R" % self.font
        if b"F2" in self.fonts:
            fonts += b" /F2 %d 0 R" % self._cjk_font()
        self._object(
            self.root,
            b"<< /Type /Pages /Kids [%s] /Count %d /MediaBox %s "
            b"/Resources << /Font << %s >> >> >>" % (kids, self.pages, self.media_box, fonts),
        )
        self._object(self.catalog, b"<< /Type /Catalog /Pages %d 0 R >>" % self.root)
        xref = self.written
        count = len(self.offsets)
        self._write(b"xref\n0 %d\n0000000000 65535 f \n" % count)
        for start in range(1, count, 4096):
            self._write(
                b"".join(b"%010d 00000 n \n" % offset for offset in self.offsets[start : start + 4096])
            )
        self._write(
            b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (count, self.catalog, xref)
        )


def render_pdf(
    template: Template,
    records: Iterable[Mapping[str, Any]],
    *,
    sheet: bool = False,
    margin_mm: float = 8.0,
    gap_mm: float = 2.0,
    out: BinaryIO | None = None,
) -> bytes | None:
    """Render labels as PDF.

    Parameters
    ----------
    template
        The label layout.
    records
        One mapping of placeholder values per label; consumed as it is iterated, and each
        page is written out once it is full, so memory stays flat however many labels.
    sheet
        ``False``: one label per page, page size = label size (roll printers).
        ``True``: as many labels as fit on A4 pages in a grid (office printers).
    out
        A binary file to write to; then nothing is returned.

    Returns
    -------
    bytes or None
        The PDF document, when *out* is not given.

    Raises
    ------
    LabelError
        When a label cannot be drawn (text that does not fit, a character the font lacks, a
        barcode too wide) or there is none. Whatever was written to *out* is then unusable.
    """
    buffer = out if out is not None else io.BytesIO()
    if sheet:
        page = A4
        cols = max(1, int((page[0] - 2 * margin_mm + gap_mm) // (template.width_mm + gap_mm)))
        rows = max(1, int((page[1] - 2 * margin_mm + gap_mm) // (template.height_mm + gap_mm)))
    else:
        page = (template.width_mm, template.height_mm)
        cols = rows = 1
        margin_mm = gap_mm = 0.0
    writer = PdfStreamWriter(buffer, *page)
    per_page = cols * rows
    labels: list[bytes] = []
    for values in records:
        r, c = divmod(len(labels), cols)
        labels.append(
            label_operators(
                template,
                values,
                margin_mm + c * (template.width_mm + gap_mm),
                margin_mm + r * (template.height_mm + gap_mm),
                page[1],
                writer.fonts,
            )
        )
        if len(labels) == per_page:
            writer.add_page(b"\n".join(labels))
            labels = []
    if labels:
        writer.add_page(b"\n".join(labels))
    writer.close()
    return None if out is not None else buffer.getvalue()
