"""Finding and reading space files: a path, or the name of a shipped space.

The canonical shipped spaces live in ``search_spaces/`` at the repository root. A copy of each
is kept inside the package (``snn_nas/space/builtin/``, package data) so that names resolve in a
non-editable install too; the repository directory wins when it exists, and a test keeps the two
identical.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

from snn_nas.jsonutil import read_text
from snn_nas.space.dimension import SpaceError
from snn_nas.space.search_space import SearchSpace
from snn_nas.yamlutil import load_yaml

REPO_SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"
SUFFIXES = (".yaml", ".yml")


def shipped_spaces() -> list[str]:
    """Names of the shipped spaces (``quick``, ``spiking_mlp``, ...), sorted."""
    names = {p.stem for p in REPO_SPACES_DIR.glob("*.yaml")} if REPO_SPACES_DIR.is_dir() else set()
    builtin = resources.files("snn_nas.space").joinpath("builtin")
    if builtin.is_dir():
        names |= {Path(entry.name).stem for entry in builtin.iterdir() if entry.name.endswith(".yaml")}
    return sorted(names)


def _shipped_text(name: str) -> tuple[str, str] | None:
    path = REPO_SPACES_DIR / f"{name}.yaml"
    if path.is_file():
        return path.read_text(encoding="utf-8"), str(path)
    entry = resources.files("snn_nas.space").joinpath("builtin", f"{name}.yaml")
    if entry.is_file():
        return entry.read_text(encoding="utf-8"), f"<shipped space {name}>"
    return None


def parse_yaml(text: str, source: str, default_name: str) -> SearchSpace:
    """A space from the text of a space file; ``source`` names it in error messages.

    The YAML is read strictly (``snn_nas.yamlutil``): a key written twice and ``.nan`` / ``.inf``
    are errors naming the line.
    """
    data: Any = load_yaml(text, source, error=SpaceError)
    if data is None:
        raise SpaceError(f"{source}: the file is empty; a space needs at least image_size, num_stages and stage depths")
    return SearchSpace.from_dict(data, source=source, default_name=default_name)


def load_space(path: str | os.PathLike[str]) -> SearchSpace:
    """Load a space file, or a shipped space by name (``quick``, ``spiking_mlp``).

    A string that is not an existing file and has no directory part is looked up among the
    shipped spaces (with or without ``.yaml``). Every problem raises ``SpaceError`` naming the
    file, the key and what is allowed.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise SpaceError(f"space: expected a file path or a shipped name {shipped_spaces()}, got {type(path).__name__}")
    given = Path(os.fspath(path)).expanduser()
    if given.is_dir():
        raise SpaceError(f"{given}: is a directory; give a space file (.yaml) or a shipped name: {shipped_spaces()}")
    if given.is_file():
        text = read_text(given, what="space file", error=SpaceError)
        return parse_yaml(text, str(given), given.stem)
    name = given.name[: -len(given.suffix)] if given.suffix in SUFFIXES else given.name
    found = _shipped_text(name) if len(given.parts) == 1 else None
    if found is None:
        raise SpaceError(f"{given}: no such space file, and not a shipped space name; shipped: {shipped_spaces()}")
    return parse_yaml(found[0], found[1], name)
