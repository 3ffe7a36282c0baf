"""The one YAML reader for user files (space files, experiment files): YAML that means one thing.

``load_yaml(text, source)`` is ``yaml.safe_load`` (no Python objects are ever constructed) with
three differences:

* a key written twice in one mapping is an error naming the key and both lines (plain YAML
  silently keeps the last value); keys brought in by a merge (``<<: *anchor``) may be
  overridden, as YAML intends;
* ``.nan``, ``.inf`` and ``-.inf`` are errors: every number snn-nas reads must be finite;
* every error is one line: ``<source>: line L: <problem>``, raised as ``FileFormatError`` or the
  ``error`` class the caller passes (e.g. ``SpaceError``).

``read_yaml(path)`` adds the UTF-8 reading of ``snn_nas.jsonutil.read_text``.
"""

from __future__ import annotations

import math
import os
from typing import Any

import yaml

from snn_nas.errors import SnnNasError
from snn_nas.jsonutil import FileFormatError, read_text

MERGE_TAG = "tag:yaml.org,2002:merge"


class _Strict(Exception):
    """Raised inside the loader; ``load_yaml`` turns it into the caller's error."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate mapping keys and non-finite floats."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it below
                continue
            line = key_node.start_mark.line + 1
            if first is not None:
                raise _Strict(
                    line,
                    f"the key {key!r} is written twice in one mapping (first on line {first}); "
                    "YAML would silently keep the last value; keep one",
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise _Strict(
                node.start_mark.line + 1, f"{node.value} is not a finite number; every number here must be finite"
            )
        return value


StrictSafeLoader.add_constructor("tag:yaml.org,2002:float", StrictSafeLoader.construct_yaml_float)


def _one_line(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    text = problem or " ".join(str(exc).split())
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {text}"
    return text


def load_yaml(text: str, source: str, *, error: type[SnnNasError] = FileFormatError) -> Any:
    """The data of YAML ``text`` (see the module docstring); ``source`` names it in errors."""
    try:
        return yaml.load(text, Loader=StrictSafeLoader)  # a SafeLoader subclass: no Python objects
    except _Strict as exc:
        raise error(f"{source}: line {exc.line}: {exc.message}") from None
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML: {_one_line(exc)}") from None
    except RecursionError:
        raise error(f"{source}: the YAML is nested too deeply") from None


def read_yaml(
    path: str | os.PathLike[str], *, what: str = "YAML file", error: type[SnnNasError] = FileFormatError
) -> Any:
    """``load_yaml`` of a UTF-8 file."""
    return load_yaml(read_text(path, what=what, error=error), str(path), error=error)
