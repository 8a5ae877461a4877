"""The ``exercise-notebooks`` directive: a list of the learner copies, each with a Colab link.

The list is read from ``notebooks/exercises/`` at build time, so a chapter added later is
listed without editing any page, and the links are built from the repository URL and branch
in ``_config.yml`` (the one place the URL is written).
"""

from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

COLAB = "https://colab.research.google.com/github"


def _title(path: Path) -> str:
    """The notebook's first markdown heading, without the leading '#'."""
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return path.stem


class ExerciseNotebooks(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        options = self.config.html_theme_options
        repository = options["repository_url"].removeprefix("https://github.com/").rstrip("/")
        branch = options.get("repository_branch", "main")
        folder = Path(self.env.srcdir) / "notebooks" / "exercises"
        copies = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
        if not copies:
            raise self.error(f"no learner copies found in {folder.name}/")
        items = nodes.bullet_list()
        for path in copies:
            url = f"{COLAB}/{repository}/blob/{branch}/notebooks/exercises/{path.name}"
            paragraph = nodes.paragraph()
            paragraph += nodes.Text(f"{_title(path)}: ")
            paragraph += nodes.reference("", "open the exercises in Colab", refuri=url)
            items += nodes.list_item("", paragraph)
        return [items]


def setup(app: Sphinx) -> dict:
    app.add_directive("exercise-notebooks", ExerciseNotebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
