"""The documentation: one story in every place (the quick search's duration), a landing-page
README whose links resolve, and the mkdocs site built with --strict (no broken link, no
docstring the API reference cannot render)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DURATION = "about 3 minutes"


def test_the_quick_search_duration_is_stated_the_same_everywhere():
    from snn_nas.cli.search import DESCRIPTION

    readme = (REPO / "README.md").read_text()
    quick = (REPO / "experiments" / "quick.yaml").read_text()
    for where, text in (("README.md", readme), ("experiments/quick.yaml", quick), ("search --help", DESCRIPTION)):
        assert DURATION in " ".join(text.split()), where
        assert not re.search(r"about 2 min|about 5 minutes|~10 min", text), where


def test_readme_is_a_landing_page_with_working_links():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) < 120
    assert 'pip install -e ".[dev]"' in readme and "snn-nas search" in readme and "pytest" in readme
    # what a landing page owes a new user: a Ray cluster's start-up and how SOPs and energy are counted
    assert "ray start --head" in readme and "--address auto" in readme
    assert "## How SOPs and energy are counted" in readme and "0.9 pJ x SOPs + 4.6 pJ x MACs" in readme
    for target in re.findall(r"\]\(([^)#]+)\)", readme):
        if target.startswith("http"):
            continue
        assert (REPO / target).exists(), target


def _nav_files(nav) -> list[str]:
    files = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        files.extend(_nav_files(value) if isinstance(value, list) else [value])
    return files


def test_every_nav_entry_exists():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    for name in _nav_files(config["nav"]):
        assert (REPO / "docs" / name).is_file(), name


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="the dev extra installs mkdocs")
def test_the_site_builds_strictly(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    page = (tmp_path / "site" / "reference" / "report" / "index.html").read_text()
    assert "front_exclusion" in page  # the API reference is generated from the docstrings
