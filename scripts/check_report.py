#!/usr/bin/env python3
"""Checks a `vigil report` / `vigil eval --html` page as headless Chromium saw it.

Inputs: the HTML file, the DOM Chromium dumped (`--dump-dom`) and its screenshot
(`--screenshot`). Checks, each failure printed, exit 1 if any:

- the screenshot is not blank: a real PNG whose pixels are not one colour (a
  reasonable fraction differs from the most common colour, several colours);
- every section is in the DOM: #run #curves #labels #calibration #errors
  #bootstrap #slices #decision;
- one PR curve and one reliability diagram (each an <svg>) per label;
- every inline thumbnail decodes: a base64 `data:image/jpeg` URI with JPEG
  magic that Pillow opens;
- no <script> element anywhere, and `--expect-text` (e.g. a row whose text is
  `<script>alert(1)</script>`) appears as text;
- the page loads nothing from the network (no http(s) src/href).
"""

import argparse
import base64
import io
import sys
from collections import Counter
from html.parser import HTMLParser

from PIL import Image

SECTIONS = ["run", "curves", "labels", "calibration", "errors", "bootstrap", "slices", "decision"]


class Dom(HTMLParser):
    """Collects what the checks need from one pass over the DOM."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sections = []
        self.scripts = 0
        self.figures = []  # (classes, data-label, has_svg)
        self.thumbs = []
        self.texts = []
        self.remote = []
        self.slice_tables = 0
        self._figure = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "section" and a.get("id"):
            self.sections.append(a["id"])
        if tag == "script":
            self.scripts += 1
        if tag == "figure":
            self._figure = [classes, a.get("data-label"), False]
            self.figures.append(self._figure)
        if tag == "svg" and self._figure is not None:
            self._figure[2] = True
        if tag == "img" and "thumb" in classes:
            self.thumbs.append(a.get("src") or "")
        if tag == "table" and "slices" in classes:
            self.slice_tables += 1
        for key in ("src", "href"):
            if (a.get(key) or "").lower().startswith(("http:", "https:", "//")):
                self.remote.append(f"<{tag} {key}={a[key]}>")

    def handle_endtag(self, tag):
        if tag == "figure":
            self._figure = None

    def handle_data(self, data):
        if data.strip():
            self.texts.append(data)


def check_screenshot(path, problems):
    img = Image.open(path)
    img.load()
    if img.format != "PNG":
        problems.append(f"{path}: not a PNG ({img.format})")
    small = img.convert("RGB")
    small.thumbnail((400, 1600))
    pixels = list(small.get_flattened_data() if hasattr(small, "get_flattened_data") else small.getdata())
    counts = Counter(pixels)
    top = counts.most_common(1)[0][1]
    other = 1 - top / len(pixels)
    print(f"screenshot {path}: {img.width}x{img.height}, {len(counts)} colours, "
          f"{other:.1%} of pixels differ from the background")
    if len(counts) < 8 or other < 0.01:
        problems.append(f"{path}: the screenshot is blank ({len(counts)} colours, {other:.2%} non-background)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--html", required=True, help="the report file")
    ap.add_argument("--dom", required=True, help="what chromium --dump-dom printed")
    ap.add_argument("--screenshot", required=True, help="what chromium --screenshot wrote")
    ap.add_argument("--labels", required=True, help="comma-separated label names")
    ap.add_argument("--expect-text", action="append", default=[], help="text that must appear as text")
    ap.add_argument("--min-thumbs", type=int, default=1, help="thumbnails that must be present")
    ap.add_argument("--expect-slices", action="store_true", help="the slices section has tables")
    args = ap.parse_args()
    labels = args.labels.split(",")
    problems = []

    raw = open(args.html, encoding="utf-8").read()
    dom_text = open(args.dom, encoding="utf-8").read()
    if "</html>" not in dom_text:
        problems.append(f"{args.dom}: not a dumped document")
    dom = Dom()
    dom.feed(dom_text)
    raw_dom = Dom()
    raw_dom.feed(raw)

    for s in SECTIONS:
        if dom.sections.count(s) != 1:
            problems.append(f"section #{s}: found {dom.sections.count(s)} times in the DOM (expected 1)")
    for kind in ("pr-curve", "reliability"):
        for label in labels:
            n = sum(1 for c, l, svg in dom.figures if kind in c and l == label and svg)
            if n != 1:
                problems.append(f"{kind} of label {label}: {n} charts with an <svg> (expected 1)")
    extra = {l for c, l, _ in dom.figures if "pr-curve" in c} - set(labels)
    if extra:
        problems.append(f"PR curves for labels not asked about: {sorted(extra)}")

    decoded = 0
    for src in dom.thumbs:
        prefix = "data:image/jpeg;base64,"
        if not src.startswith(prefix):
            problems.append(f"thumbnail is not an inline JPEG: {src[:60]}")
            continue
        data = base64.b64decode(src[len(prefix):], validate=True)
        if data[:3] != b"\xff\xd8\xff":
            problems.append("thumbnail lacks the JPEG magic")
            continue
        img = Image.open(io.BytesIO(data))
        img.verify()
        decoded += 1
    print(f"thumbnails: {decoded} decoded of {len(dom.thumbs)}")
    if decoded < args.min_thumbs:
        problems.append(f"{decoded} thumbnails decoded, expected at least {args.min_thumbs}")

    if dom.scripts or raw_dom.scripts:
        problems.append(f"<script> elements: {dom.scripts} in the DOM, {raw_dom.scripts} in the file")
    for text in args.expect_text:
        if not any(text in t for t in dom.texts):
            problems.append(f"text {text!r} does not appear as text in the DOM")
        else:
            print(f"text {text!r} appears as text")
    if dom.remote or raw_dom.remote:
        problems.append(f"the page loads from the network: {(dom.remote + raw_dom.remote)[:3]}")
    if args.expect_slices and dom.slice_tables < len(labels):
        problems.append(f"{dom.slice_tables} slice tables, expected one per label ({len(labels)})")

    check_screenshot(args.screenshot, problems)
    print(f"{args.html}: {len(raw)} bytes; sections {', '.join(dom.sections)}; "
          f"{len(dom.figures)} charts for {len(labels)} labels")
    for p in problems:
        print(f"FAIL: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print("report OK")


if __name__ == "__main__":
    main()
