#!/usr/bin/env python3
"""Check the links of the built book and of the top-level markdown files.

    check_links.py [--book docs/book] [--markdown README.md FAQ.md CONTRIBUTING.md]

Walks every HTML page of the built mdBook (`mdbook build docs` writes `docs/book/`)
and the given markdown files, and fails on any relative link to a file that does not
exist or to a `#anchor` the target does not have. HTML anchors are the `id`s (and
`name`s) the page really has; a markdown file's anchors are its headings' ids as
mdBook and GitHub make them (lowercase, whitespace to '-', punctuation dropped,
repeats numbered `-1`, `-2`). External `http(s)://` and `mailto:` links are listed,
never fetched: the check needs no network. Python 3 standard library only.

Exit status 0 when every link resolves, 1 with one line per broken link otherwise.
CI (`.ci/run`, step "The book") runs it after `mdbook build docs`.
"""

from __future__ import annotations

import argparse
import html.parser
import os
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

EXTERNAL = ("http://", "https://", "mailto:", "ftp://")
# Pages of mdBook's theme that are not content: the printable page repeats every
# chapter with links rewritten by JavaScript-era rules, toc.html is the sidebar frame.
SKIP_HTML = {"print.html", "toc.html"}


class Page(html.parser.HTMLParser):
    """The ids and the outgoing links of one HTML file."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key):
                self.ids.add(a[key])
        if tag == "a" and a.get("href") is not None:
            self.links.append(a["href"])
        if tag in ("img", "script") and a.get("src"):
            self.links.append(a["src"])
        if tag == "link" and a.get("href"):
            self.links.append(a["href"])


def heading_id(text: str) -> str:
    """mdBook's (and GitHub's) id of a heading's text."""
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link: its text
    out = []
    for ch in text:
        if ch.isalnum() or ch in "_-":
            out.append(ch.lower())
        elif ch.isspace():
            out.append("-")
    return "".join(out)


def markdown_ids(path: Path) -> set[str]:
    ids: set[str] = set()
    seen: dict[str, int] = {}
    fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
            continue
        m = None if fence else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = heading_id(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            ids.add(base if n == 0 else f"{base}-{n}")
        for anchor in re.findall(r'<a\s+(?:id|name)="([^"]+)"', line):
            ids.add(anchor)
    return ids


def markdown_links(path: Path) -> list[str]:
    """Link targets of a markdown file, outside fenced code and inline code."""
    links = []
    fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
            continue
        if fence:
            continue
        line = re.sub(r"`[^`]*`", "", line)
        links += re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", line)
        links += re.findall(r"^\s*\[[^\]]+\]:\s*(\S+)", line)
    return links


class Checker:
    def __init__(self) -> None:
        self.broken: list[str] = []
        self.external: set[str] = set()
        self.checked = 0
        self._ids: dict[Path, set[str] | None] = {}

    def ids_of(self, target: Path) -> set[str] | None:
        """Anchors of a file, or None when the kind of file has none we can know."""
        if target not in self._ids:
            if target.suffix == ".html":
                page = Page()
                page.feed(target.read_text(encoding="utf-8", errors="replace"))
                self._ids[target] = page.ids
            elif target.suffix == ".md":
                self._ids[target] = markdown_ids(target)
            else:
                self._ids[target] = None
        return self._ids[target]

    def check(self, source: Path, link: str) -> None:
        if link.startswith(EXTERNAL) or link.startswith("//"):
            self.external.add(link)
            return
        if link.startswith(("javascript:", "data:")):
            return
        parts = urlsplit(link)
        if parts.scheme:
            self.broken.append(f"{source}: {link}: unknown scheme")
            return
        self.checked += 1
        path = unquote(parts.path)
        if path.startswith("/"):
            self.broken.append(f"{source}: {link}: absolute path (use a relative link)")
            return
        target = (source.parent / path).resolve() if path else source.resolve()
        if path and target.is_dir():
            index = target / "index.html"
            if source.suffix == ".html" or index.exists():
                target = index
        if not target.exists():
            self.broken.append(f"{source}: {link}: no such file {os.path.relpath(target)}")
            return
        if parts.fragment:
            ids = self.ids_of(target)
            anchor = unquote(parts.fragment)
            if ids is not None and anchor not in ids:
                self.broken.append(
                    f"{source}: {link}: {os.path.relpath(target)} has no anchor #{anchor}"
                )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--book", type=Path, default=Path("docs/book"), help="built HTML")
    ap.add_argument(
        "--markdown",
        type=Path,
        nargs="*",
        default=[Path("README.md"), Path("FAQ.md"), Path("CONTRIBUTING.md")],
        help="markdown files to check",
    )
    ap.add_argument("--list-external", action="store_true", help="print external links")
    args = ap.parse_args()

    c = Checker()
    if not args.book.is_dir():
        print(f"check_links.py: {args.book} is not a directory (run `mdbook build docs`)",
              file=sys.stderr)
        return 1
    pages = sorted(p for p in args.book.rglob("*.html") if p.name not in SKIP_HTML)
    if not pages:
        print(f"check_links.py: no HTML pages under {args.book}", file=sys.stderr)
        return 1
    for page in pages:
        parsed = Page()
        parsed.feed(page.read_text(encoding="utf-8", errors="replace"))
        for link in parsed.links:
            c.check(page, link)
    for md in args.markdown:
        if not md.exists():
            c.broken.append(f"{md}: file missing")
            continue
        for link in markdown_links(md):
            c.check(md, link)

    if args.list_external:
        for link in sorted(c.external):
            print(f"external (not fetched): {link}")
    if c.broken:
        for line in c.broken:
            print(f"broken link: {line}", file=sys.stderr)
        print(f"check_links.py: {len(c.broken)} broken of {c.checked} relative links",
              file=sys.stderr)
        return 1
    print(
        f"check_links.py: {c.checked} relative links in {len(pages)} pages and "
        f"{len(args.markdown)} markdown files resolve; {len(c.external)} external "
        "links listed, not fetched"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
