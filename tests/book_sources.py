"""Facts about the book read from the repository, shared by the notebook and browser tests."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def chapters() -> list[Path]:
    """The chapter notebooks, in book order (learner copies are not chapters)."""
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def repository_url() -> str:
    """The repository URL from _config.yml, the one place it is written."""
    match = re.search(r"^\s*url:\s*(\S+)", (ROOT / "_config.yml").read_text(), re.M)
    if not match:
        raise AssertionError("_config.yml has no repository url")
    return match.group(1).rstrip("/")
