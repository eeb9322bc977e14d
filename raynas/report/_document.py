"""``report.md`` and a self-contained ``report.html`` (figures embedded) of one experiment folder.

The document is built once as a list of blocks (headings, paragraphs, tables, figures) and then
rendered twice, to Markdown (figures linked as files next to it) and to HTML (figures inlined as
base64 ``data:`` URIs, so the one file can be mailed or attached to an issue).
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path

#: Block kinds: ("h1"|"h2"|"p", text), ("table", head, rows), ("img", file name, caption).
Block = tuple


@dataclass
class Document:
    blocks: list[Block] = field(default_factory=list)

    def h1(self, text: str) -> None:
        self.blocks.append(("h1", text))

    def h2(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, head: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", head, rows))

    def img(self, path: Path, caption: str) -> None:
        self.blocks.append(("img", Path(path), caption))

    def markdown(self, base: Path) -> str:
        out = []
        for block in self.blocks:
            kind = block[0]
            if kind == "h1":
                out.append(f"# {block[1]}")
            elif kind == "h2":
                out.append(f"## {block[1]}")
            elif kind == "p":
                out.append(block[1])
            elif kind == "table":
                head, rows = block[1], block[2]
                out.append("\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                                      *["| " + " | ".join(r) + " |" for r in rows]]))
            elif kind == "img":
                out.append(f"![{block[2]}]({_relative(block[1], base)})\n\n*{block[2]}*")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        body = []
        for block in self.blocks:
            kind = block[0]
            if kind in ("h1", "h2"):
                body.append(f"<{kind}>{_inline(block[1])}</{kind}>")
            elif kind == "p":
                body.append(f"<p>{_inline(block[1])}</p>")
            elif kind == "table":
                head = "".join(f"<th>{_inline(h)}</th>" for h in block[1])
                rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in block[2])
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif kind == "img":
                data = base64.b64encode(Path(block[1]).read_bytes()).decode("ascii")
                body.append(f'<figure><img alt="{html.escape(block[2])}" src="data:image/png;base64,{data}">'
                            f"<figcaption>{_inline(block[2])}</figcaption></figure>")
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n"
        )


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}img{max-width:100%}figure{margin:1.5em 0}"
    "figcaption{font-style:italic;color:#555}code{background:#f3f3f3;padding:0 3px}"
)


def _relative(path: Path, base: Path) -> str:
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _inline(text: str) -> str:
    """Escape ``text`` for HTML and turn Markdown's `code` and **bold** spans into tags."""
    out = html.escape(text)
    parts = out.split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def fmt(x: float, digits: int = 3) -> str:
    """``x`` with ``digits`` decimals ("-" for NaN), without a sign on a value that rounds to zero."""
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x + 0.0 if round(x, digits) != 0 else 0.0:.{digits}f}"


def fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return "-"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
