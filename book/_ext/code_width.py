"""Size the code of notebook cells so that an 88-character line fits the text column.

The chapters keep code lines to at most 88 characters (CONTRIBUTING.md), but the theme's
monospace text (about 8.4 px a character) fits only about 80 in the 684 px column of a
1280 px wide window, so a reader would scroll sideways. This extension writes one small
stylesheet that sets cell inputs at 0.74rem (about 7.1 px a character: 88 characters and
the padding in about 660 px, which also fits a solution's narrower 666 px box) and links it
from every page. ``tests/browser_check.py`` fails on any code cell that still scrolls.
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx

CSS_NAME = "code_width.css"
CSS = """/* Written by book/_ext/code_width.py: 88-character code lines fit the text column. */
div.cell_input pre,
div.cell_input pre code {
  font-size: 0.74rem;
}
"""


def _write_css(app: Sphinx, exception: Exception | None) -> None:
    if exception is None and app.builder.format == "html":
        static = Path(app.outdir) / "_static"
        static.mkdir(parents=True, exist_ok=True)
        (static / CSS_NAME).write_text(CSS)


def setup(app: Sphinx) -> dict:
    app.add_css_file(CSS_NAME)
    app.connect("build-finished", _write_css)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
