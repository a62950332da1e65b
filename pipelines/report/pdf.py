"""The report as PDF for printing (reportlab, pure Python): same sections, charts and tables."""

from __future__ import annotations

import io
from pathlib import Path
from xml.sax.saxutils import escape

from pipelines.report.model import Report


def write_pdf(report: Report, path: Path) -> Path:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.lib.utils import ImageReader
    from reportlab.platypus import (
        Image,
        KeepTogether,
        LongTable,
        PageBreak,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        TableStyle,
    )

    report.check()
    page = landscape(A4)  # wide tables (Table 1, rates) fit across
    doc = SimpleDocTemplate(str(path), pagesize=page, leftMargin=1.5 * cm, rightMargin=1.5 * cm,
                            topMargin=1.5 * cm, bottomMargin=1.5 * cm, title=report.title,
                            author="levelcare", subject=f"Period {report.period}")
    width = page[0] - 3 * cm
    ss = getSampleStyleSheet()
    body = ss["BodyText"]
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=10, textColor=colors.HexColor("#5a5a5a"))
    warn = ParagraphStyle("warn", parent=body, textColor=colors.HexColor("#a33b3b"), fontName="Helvetica-Oblique")
    cell = ParagraphStyle("cell", parent=body, fontSize=6.5, leading=8)
    head = ParagraphStyle("head", parent=cell, fontName="Helvetica-Bold")

    def p(text: str, style=body) -> Paragraph:
        return Paragraph(escape(str(text)), style)

    story = [p(report.title, ss["Title"]),
             p(f"Period: {report.period} · results run {report.run_id or '–'} · "
               f"created {report.created_at or '–'} · disclosure rule {report.rule_name}", small),
             p(report.disclosure_note, small), Spacer(1, 0.3 * cm)]
    for k, s in enumerate(report.sections):
        if k:
            story.append(PageBreak())
        story.append(p(s.title, ss["Heading1"]))
        story += [p(x) for x in s.paragraphs]
        story += [p(f"• {x}") for x in s.bullets]
        story += [p(x, warn) for x in s.unavailable]
        story += [p(f"{text}: {href}", small) for text, href in s.links]
        for c in s.charts:
            img = ImageReader(io.BytesIO(c.png))
            iw, ih = img.getSize()
            w = min(width, iw * 0.55)
            h = w * ih / iw
            if h > 15 * cm:
                h, w = 15 * cm, 15 * cm * iw / ih
            story.append(KeepTogether([Image(io.BytesIO(c.png), width=w, height=h),
                                       p(f"{c.title}. {c.caption}", small)]))
        for t in s.tables:
            cols = list(t.frame.columns)
            data = [[Paragraph(escape(t.heading(c)), head) for c in cols]]
            for i in range(t.frame.shape[0]):
                data.append([Paragraph(escape(t.text(i, c, report.marker)), cell) for c in cols])
            tbl = LongTable(data, colWidths=[width / len(cols)] * len(cols), repeatRows=1)
            tbl.setStyle(TableStyle([
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f2f5f8")),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#d0d0d0")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]))
            story += [Spacer(1, 0.3 * cm), p(t.title, ss["Heading4"]), tbl]
            if t.note:
                story.append(p(t.note, small))
    doc.build(story)
    return path
