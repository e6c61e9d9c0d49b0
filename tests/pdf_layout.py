"""Where things lie on a rendered PDF's pages (pypdfium2): headings, content, how full each page is.

Read from the PDF's own page objects, not from reportgen's templates: a heading is a text object set in a
heading's size (h2 14 pt, h3 11 pt; body text is 10 pt and smaller), content is any text or image object
inside the page's margins (the running footer is outside them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MM = 72 / 25.4
TOP_MARGIN, BOTTOM_MARGIN = 16 * MM, 18 * MM  # templates/report.css's @page margins
HEADING_PT = 10.5  # h3 is 11 pt, h2 14 pt; body text 10 pt, notes and tables smaller
SECTION_PT = 13.5  # h2: a section starts


@dataclass
class Item:
    top: float  # distance from the page's top edge, points
    bottom: float
    heading: bool
    section: bool


@dataclass
class Page:
    number: int
    height: float
    items: list[Item]

    @property
    def area(self) -> tuple[float, float]:
        return TOP_MARGIN, self.height - BOTTOM_MARGIN

    def filled(self) -> float:
        """How far down the content area the lowest content reaches (0..1)."""
        top, bottom = self.area
        if not self.items:
            return 0.0
        return (max(i.bottom for i in self.items) - top) / (bottom - top)

    def starts_with_section(self) -> bool:
        return bool(self.items) and min(self.items, key=lambda i: i.top).section


def pages(pdf: Path) -> list[Page]:
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    doc = pdfium.PdfDocument(str(pdf))
    out = []
    for n in range(len(doc)):
        page = doc[n]
        height = page.get_height()
        items = []
        for obj in page.get_objects(max_depth=4):
            if obj.type not in (raw.FPDF_PAGEOBJ_TEXT, raw.FPDF_PAGEOBJ_IMAGE):
                continue
            left, bottom, right, top = obj.get_bounds()
            t, b = height - top, height - bottom
            if b <= TOP_MARGIN or t >= height - BOTTOM_MARGIN:  # the running header/footer
                continue
            size = 0.0
            if obj.type == raw.FPDF_PAGEOBJ_TEXT:
                m = obj.get_matrix()  # the font size is in text space: times the matrix's vertical scale
                size = obj.get_font_size() * ((m.b**2 + m.d**2) ** 0.5)
            items.append(Item(t, b, size >= HEADING_PT, size >= SECTION_PT))
        out.append(Page(n + 1, height, items))
    return out


def stranded_headings(doc: list[Page]) -> list[str]:
    """Headings in the bottom fifth of a page with nothing of their own below them on that page."""
    bad = []
    for p in doc:
        top, bottom = p.area
        for h in (i for i in p.items if i.heading):
            if h.top < bottom - 0.2 * (bottom - top):
                continue
            below = [i for i in p.items if not i.heading and i.top >= h.bottom - 0.5]
            if not below:
                bad.append(f"page {p.number}: a heading at {h.top:.0f} pt with nothing after it")
    return bad


def underfilled(doc: list[Page], least: float = 0.4) -> list[str]:
    """Pages filled less than ``least`` where no section ends (the next page does not start a section)."""
    bad = []
    for p, nxt in zip(doc, doc[1:]):
        if p.filled() < least and not nxt.starts_with_section():
            bad.append(f"page {p.number}: {100 * p.filled():.0f}% filled, and page {nxt.number} goes on")
    return bad


def lines(pdf: Path) -> list[list[tuple[float, float, str]]]:
    """Each page's text runs as (top, bottom, text), top down (points from the page's top edge)."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(pdf))
    out = []
    for n in range(len(doc)):
        page = doc[n]
        height = page.get_height()
        text = page.get_textpage()
        runs = []
        for i in range(text.count_rects()):
            left, bottom, right, top = text.get_rect(i)
            runs.append((height - top, height - bottom, text.get_text_bounded(left, bottom, right, top)))
        out.append(sorted(runs))
    return out


def orphaned_tables(pdf: Path, header: str = "rank") -> list[str]:
    """Tables whose header row (a text run starting with ``header``) has no image above it on its page: the
    table went on without the figure it belongs to (a CAM figure's predictions at the top of the next
    page)."""
    doc = pages(pdf)
    bad = []
    for p, runs in zip(doc, lines(pdf)):
        for top, _bottom, text in runs:
            if not text.strip().lower().startswith(header):
                continue
            if not any(
                i.bottom <= top + 0.5 and not i.heading and i.top < top for i in _images(pdf, p.number)
            ):
                bad.append(f"page {p.number}: a table at {top:.0f} pt with no figure above it")
    return bad


def _images(pdf: Path, number: int) -> list[Item]:
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    page = pdfium.PdfDocument(str(pdf))[number - 1]
    height = page.get_height()
    out = []
    for obj in page.get_objects(max_depth=4):
        if obj.type == raw.FPDF_PAGEOBJ_IMAGE:
            left, bottom, right, top = obj.get_bounds()
            out.append(Item(height - top, height - bottom, False, False))
    return out
