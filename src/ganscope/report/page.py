"""Self-contained HTML: one file with its pictures inlined, its style included and no
script or network access, so a report can be mailed, archived or opened offline and
always shows the same thing."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ganscope import __version__

CSS = """
:root{--ink:#212529;--muted:#6c757d;--line:#e9ecef;--soft:#f8f9fa;--accent:#1c7ed6;
--ok:#2b8a3e;--ok-bg:#ebfbee;--warn:#e67700;--warn-bg:#fff9db}
*{box-sizing:border-box}
body{margin:0;font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:#fff}
main{max-width:1180px;margin:0 auto;padding:0 28px 48px}
header{background:linear-gradient(135deg,#1c2a3a,#24476b);color:#fff;padding:26px 0 20px;margin-bottom:8px}
header .inner{max-width:1180px;margin:0 auto;padding:0 28px}
header .kicker{text-transform:uppercase;letter-spacing:.12em;font-size:12px;opacity:.75}
header h1{margin:4px 0 6px;font-size:28px;font-weight:650;word-break:break-all}
header .meta{opacity:.85;font-size:14px}
nav{position:sticky;top:0;z-index:2;background:rgba(255,255,255,.95);border-bottom:1px solid var(--line);
padding:8px 0;margin:0 -28px 18px;padding-left:28px}
nav a{color:var(--accent);text-decoration:none;margin-right:18px;font-size:14px}
nav a:hover{text-decoration:underline}
h2{font-size:20px;margin:34px 0 6px;padding-bottom:4px;border-bottom:2px solid var(--line)}
h3{font-size:16px;margin:22px 0 4px}
p.lead,figcaption,.muted{color:var(--muted)}
p.lead{margin:2px 0 12px;font-size:14px}
.verdict{border-left:5px solid var(--ok);background:var(--ok-bg);padding:12px 16px;border-radius:6px;margin:16px 0}
.verdict.warn{border-color:var(--warn);background:var(--warn-bg)}
.verdict .label{font-size:12px;text-transform:uppercase;letter-spacing:.1em;color:var(--muted)}
.verdict p{margin:4px 0 0;font-size:16px}
.verdict p.events{font-size:14px;margin-top:6px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;margin:14px 0}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;background:var(--soft)}
.card .k{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.06em}
.card .v{font-size:22px;font-weight:600;font-variant-numeric:tabular-nums}
.card .s{font-size:12px;color:var(--muted)}
table{border-collapse:collapse;width:100%;font-size:14px;margin:8px 0}
th{text-align:left;font-weight:600;color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.05em}
th,td{padding:7px 10px;border-bottom:1px solid var(--line);vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:hover{background:var(--soft)}
.bar{display:inline-block;width:70px;height:7px;background:var(--line);border-radius:4px;margin-left:8px;
vertical-align:middle;overflow:hidden}
.bar i{display:block;height:100%;background:var(--accent)}
.tag{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;background:#fff4e6;
color:#d9480f;margin:1px 2px}
.tag.ended{background:var(--line);color:var(--muted)}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:7px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
code{background:var(--soft);padding:1px 4px;border-radius:4px}
code.option{white-space:nowrap;line-height:1.9}
pre{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:12px 14px;overflow:auto;
max-height:520px;columns:2 280px;column-gap:28px}
figure{margin:14px 0 26px}
figure img{display:block;max-width:100%;height:auto;border:1px solid var(--line);border-radius:6px}
figcaption{font-size:13.5px;margin-top:6px;max-width:900px}
footer{margin-top:40px;color:var(--muted);font-size:13px;border-top:1px solid var(--line);padding-top:10px}
"""


@dataclass(frozen=True)
class Picture:
    """A picture and how to read it; `name` is its file in the run folder."""

    name: str
    title: str
    caption: str
    content: bytes

    @property
    def mime(self) -> str:
        return "image/gif" if self.name.endswith(".gif") else "image/png"


def esc(value: object) -> str:
    return html.escape(str(value))


def figure(picture: Picture) -> str:
    """The picture inlined as a data: URI."""
    data = base64.b64encode(picture.content).decode("ascii")
    return (f'<figure><img src="data:{picture.mime};base64,{data}" alt="{esc(picture.title)}">'
            f"<figcaption><strong>{esc(picture.title)}.</strong> {esc(picture.caption)}</figcaption></figure>")


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """Rows of HTML cells (already escaped); columns in `numeric` right-aligned."""
    head = "".join(f"<th{' class=num' if i in numeric else ''}>{h}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{' class=num' if i in numeric else ''}>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def card(key: str, value: str, sub: str = "") -> str:
    return (f'<div class="card"><div class="k">{esc(key)}</div><div class="v">{esc(value)}</div>'
            f'<div class="s">{esc(sub)}</div></div>')


def bar(fraction: float) -> str:
    """A small inline bar (0..1), so a column of shares reads at a glance."""
    return f'<span class="bar"><i style="width:{100 * max(0.0, min(1.0, fraction)):.0f}%"></i></span>'


def mean_std(mean: float | None, std: float | None, scale: float = 1, digits: int = 1, unit: str = "") -> str:
    """'mean ± std' (std only when there is one); 'n/a' when undefined."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    text = f"{scale * mean:.{digits}f}"
    if std is not None and not math.isnan(std) and std > 0:
        text += f" ± {scale * std:.{digits}f}"
    return text + unit


def number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def document(title: str, kicker: str, meta: str, nav: Sequence[tuple[str, str]], body: str) -> str:
    """The page: header, sticky section links, body and footer."""
    links = "".join(f'<a href="#{anchor}">{esc(label)}</a>' for anchor, label in nav)
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{esc(title)}</title><style>{CSS}</style></head><body>
<header><div class="inner"><div class="kicker">{esc(kicker)}</div><h1>{esc(title)}</h1>
<div class="meta">{esc(meta)}</div></div></header>
<main><nav>{links}</nav>
{body}
<footer>Written by ganscope {esc(__version__)} on {stamp}. Self-contained: pictures inlined, nothing fetched.</footer>
</main></body></html>
"""
