"""Reading a drill report back, for the tests: its SVGs as XML, its summary's figures, its text."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

SVG = "{http://www.w3.org/2000/svg}"


def svgs(html: str) -> list[ET.Element]:
    """Every inline SVG, parsed as XML (ParseError when one is not well-formed)."""
    found = re.findall(r"<svg\b.*?</svg>", html, flags=re.S)
    return [ET.fromstring(chunk) for chunk in found]


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.rows: dict[str, dict[str, str]] = {}
        self.totals: dict[str, str] = {}
        self._row: dict[str, str] | None = None
        self._cell: str | None = None
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("style", "title"):
            self._skip += 1
        if tag == "tr" and attrs.get("data-scenario") is not None:
            self._row = self.rows.setdefault(attrs["data-scenario"], {})
        elif tag == "tr" and "totals" in (attrs.get("class") or ""):
            self._row = self.totals
        if tag in ("td", "th") and self._row is not None:
            self._cell = (attrs.get("class") or "").split()[-1] if attrs.get("class") else None
            if self._cell:
                self._row[self._cell] = ""

    def handle_endtag(self, tag):
        if tag in ("style", "title"):
            self._skip -= 1
        if tag in ("td", "th"):
            self._cell = None
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._skip:
            return
        self.text.append(data)
        if self._row is not None and self._cell:
            self._row[self._cell] += data


def read(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def first_int(text: str) -> int:
    return int(re.match(r"\s*(\d+)", text).group(1))


def summary_counts(html: str) -> dict[str, dict[str, int]]:
    """scenario -> requests, admitted, failed, not-injected as the summary table shows them."""
    page = read(html)
    return {name: {key: first_int(cells[key]) for key in ("requests", "admitted", "failed", "not-injected")}
            for name, cells in page.rows.items()}


def text(html: str) -> str:
    """What a reader sees (no markup, entities decoded; the charts' tooltips left out)."""
    return " ".join(" ".join(read(html).text).split())


def fetches(html: str) -> list[str]:
    """Whatever would make a browser fetch or run something: scripts, links, sources, imports,
    url() other than the page's own fragments. (A URL in the text, e.g. an apiserver's message,
    is only text.)"""
    found = re.findall(r"<script\b|<link\b|<iframe\b|<object\b|<embed\b|<img\b|@import|\bon\w+\s*=", html, flags=re.I)
    found += re.findall(r"\b(?:src|href|xlink:href)\s*=\s*\"(?!#)[^\"]*\"", html, flags=re.I)
    found += re.findall(r"url\(\s*(?!#)[^)]*\)", html, flags=re.I)
    return found
