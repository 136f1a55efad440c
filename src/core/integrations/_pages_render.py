"""The built-in static site builder: Markdown to HTML (a small, safe subset), other files copied.

Supported Markdown: ATX headings, paragraphs, fenced code blocks, bullet and
numbered lists, block quotes, rules, inline code, links and images (relative
``.md`` links become ``.html``; only http(s), mailto and relative URLs are kept),
``**strong**`` and ``*emphasis*``. Every text is HTML-escaped first, so raw HTML
in a page shows as text.
"""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

SKIPPED = {"node_modules", "__pycache__", "site", "_site", "_build"}
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{max-width:46rem;margin:2rem auto;padding:0 1rem;font:16px/1.6 system-ui,sans-serif}}
pre{{background:#f4f4f4;padding:.8rem;overflow:auto}}code{{font-family:ui-monospace,monospace}}
</style>
</head>
<body>
{nav}<main>
{body}</main>
</body>
</html>
"""

_FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)\s*$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+(.*)$")
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)(?:\s+&quot;[^)]*&quot;)?\)")
_SAFE_URL = re.compile(r"^(https?:|mailto:|#|[^:]*$)", re.IGNORECASE)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _url(raw: str) -> str | None:
    url = html.unescape(raw)
    if not _SAFE_URL.match(url):
        return None  # javascript:, data: … are dropped
    path, hash_, anchor = url.partition("#")
    if "://" not in path and path.endswith(".md"):
        path = path[:-3] + ".html"
    return html.escape(path + hash_ + anchor, quote=True)


def _link(match: re.Match[str]) -> str:
    image, text, url = match.group(1), match.group(2), _url(match.group(3))
    if url is None:
        return text
    if image:
        return f'<img src="{url}" alt="{text}">'
    return f'<a href="{url}">{text}</a>'


def inline(text: str) -> str:
    """One line of Markdown text as escaped HTML with code, links and emphasis."""
    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for index, part in enumerate(parts):
        if index % 2:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        part = _LINK.sub(_link, html.escape(part))
        part = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", part)
        part = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", part)
        out.append(part)
    return "".join(out)


def _blocks(lines: list[str]) -> Iterator[str]:
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if fence:
            end = next((j for j in range(index + 1, len(lines))
                        if lines[j].startswith(fence.group(1))), len(lines))
            lang = f' class="language-{fence.group(2)}"' if fence.group(2) else ""
            code = html.escape("\n".join(lines[index + 1:end]))
            yield f"<pre><code{lang}>{code}</code></pre>"
            index = end + 1
            continue
        heading = _HEADING.match(line)
        if heading:
            level, text = len(heading.group(1)), heading.group(2)
            yield f'<h{level} id="{slug(text)}">{inline(text)}</h{level}>'
        elif _RULE.match(line):
            yield "<hr>"
        elif _BULLET.match(line) or _NUMBERED.match(line):
            pattern, tag = (_BULLET, "ul") if _BULLET.match(line) else (_NUMBERED, "ol")
            items = []
            while index < len(lines) and (item := pattern.match(lines[index])):
                items.append(f"<li>{inline(item.group(1))}</li>")
                index += 1
            yield f"<{tag}>\n" + "\n".join(items) + f"\n</{tag}>"
            continue
        elif line.startswith(">"):
            quoted = []
            while index < len(lines) and lines[index].startswith(">"):
                quoted.append(lines[index][1:].strip())
                index += 1
            yield f"<blockquote><p>{inline(' '.join(quoted))}</p></blockquote>"
            continue
        elif line.strip():
            paragraph = []
            while index < len(lines) and lines[index].strip() and not _starts_block(lines[index]):
                paragraph.append(lines[index].strip())
                index += 1
            yield f"<p>{inline(' '.join(paragraph))}</p>"
            continue
        index += 1


def _starts_block(line: str) -> bool:
    return any(p.match(line) for p in (_FENCE, _HEADING, _BULLET, _NUMBERED, _RULE)) \
        or line.startswith(">")


def markdown_to_html(text: str) -> str:
    """The HTML body for a Markdown document."""
    return "\n".join(_blocks(text.replace("\r\n", "\n").split("\n"))) + "\n"


def page(title: str, body: str, nav: str = "") -> str:
    return PAGE.format(title=html.escape(title), body=body, nav=nav)


def title_of(text: str, fallback: str) -> str:
    first = next((m.group(2) for m in map(_HEADING.match, text.splitlines()) if m), None)
    return first or fallback


def source_files(source: Path) -> Iterator[Path]:
    """The files of a segment, hidden files, links and build/vendor directories left out."""
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source).parts
        if any(p.startswith(".") or p in SKIPPED for p in relative) or path.is_symlink():
            continue
        if path.is_file() and not any(parent.is_symlink() for parent in path.parents
                                      if source in parent.parents):
            yield path


def build_static(source: Path, out: Path, site_title: str,
                 emit: Callable[[str, int, int], None]) -> list[str]:
    """Render *source* into *out*: ``.md`` → ``.html`` (README.md is the index if there is no
    index.md), other files copied; *emit* hears (file, done, total) after each. Returns the files
    written, relative to *out*."""
    files = list(source_files(source))
    has_index = any(p.relative_to(source).as_posix() == "index.md" for p in files)
    written = []
    for path in files:
        relative = path.relative_to(source)
        if path.suffix.lower() == ".md":
            name = "index.html" if relative.as_posix() == "README.md" and not has_index \
                else relative.with_suffix(".html").as_posix()
            text = path.read_text(encoding="utf-8", errors="replace")
            nav = f'<nav><a href="{"../" * (len(relative.parts) - 1)}index.html">' \
                  f"{html.escape(site_title)}</a></nav>\n"
            content = page(title_of(text, relative.stem), markdown_to_html(text), nav)
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_text(content, encoding="utf-8")
        else:
            name = relative.as_posix()
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out / name)
        written.append(name)
        emit(name, len(written), len(files))
    return written
