"""The self-contained HTML page: figures as base64 PNG, tables and notes, no external files."""

from __future__ import annotations

import base64
import html
import math
from typing import Any

from mtl_jax.report.figures import Rendered

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1150px;color:#222;padding:0 16px}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:1.6em}
h3{font-size:1.02em;margin:1.2em 0 .3em}p.meta{color:#555;margin-top:0}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
figure{margin:.6em 0 1.4em}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:4px 10px;margin:.4em 0;font-size:.9em}
"""


def fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.{digits}f}"
    return html.escape(str(value))


def table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def figure(rendered: Rendered) -> str:
    data = base64.b64encode(rendered.png).decode("ascii")
    return (f'<figure id="{rendered.name}"><h3>{html.escape(rendered.title)}</h3>'
            f'<img alt="{html.escape(rendered.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(rendered.caption)}</figcaption></figure>")


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def page(title: str, meta: str, sections: list[tuple[str, list[str]]]) -> str:
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><p class=meta>{html.escape(meta)}</p>"]
    for heading, blocks in sections:
        if blocks:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
            parts.extend(blocks)
    parts.append("</body></html>")
    return "\n".join(parts)
