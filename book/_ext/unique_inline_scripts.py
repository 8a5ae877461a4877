"""Write each inline <script> once per page.

Sphinx 7.4 registers an inline script (``app.add_js_file(None, body=...)``) added after
the builder starts under the name ``None``, then registers it again under ``''`` before
writing, so the page carries it twice. For sphinx-thebe's ``const THEBE_JS_URL = ...``
the second copy is a SyntaxError in the reader's browser console. This drops the repeats.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def _drop_repeated_scripts(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree) -> None:
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, unique = set(), []
    for script in scripts:
        key = (script.filename or "", script.priority, tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
