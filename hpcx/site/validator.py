"""A standard JSON Schema validator (jsonschema, Draft 2020-12) that reports one line per problem, each naming
the key path, the value found and what was expected (``clusters.c.partitions.p.max_nodes: 0 is below the
minimum 1``), in the order of the document.

This module imports jsonschema, so only ``hpcx.site.schema.validate`` imports it, when a document is
validated: a site file that is cached as valid, ``hpcx --help`` and ``hpcx render`` never load it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators

# A problem: its place in the document (the position of each key or item on the way), its rank among the
# problems of that place (the value's type first, as a type error makes the rest moot), and its line.
Problem = tuple[tuple[int, ...], int, str]
_RANK = {"type": 0, "enum": 0, "required": 1, "minProperties": 2}


def problems(doc: Any, schema: dict[str, Any]) -> list[str]:
    """One line per problem of ``doc`` against ``schema``, in document order; empty means valid."""
    found: list[Problem] = []
    for error in _validator_class()(schema).iter_errors(doc):
        found += _problems(error, doc)
    found.sort(key=lambda p: (p[0], p[1]))
    moot = {place for place, rank, _ in found if rank == 0}
    lines = [line for place, rank, line in found if rank == 0 or place not in moot]
    return list(dict.fromkeys(lines))  # each missing key once, however many errors named it


@lru_cache(maxsize=1)
def _validator_class() -> Any:
    """Draft 2020-12 with the two points where a site file needs more than the letter of the standard."""
    types = Draft202012Validator.TYPE_CHECKER.redefine_many({"integer": _is_integer, "number": _is_number})
    return validators.extend(Draft202012Validator, validators={"pattern": _pattern}, type_checker=types)


def _is_integer(_checker: Any, value: Any) -> bool:
    # JSON Schema calls 2.0 an integer; a count in a site file goes into an sbatch line, where 2.0 is no count.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(_checker: Any, value: Any) -> bool:
    # YAML's .nan and .inf are no JSON numbers, and a NaN passes every minimum and maximum.
    return _is_integer(_checker, value) or (isinstance(value, float) and math.isfinite(value))


def _pattern(_validator: Any, pattern: str, instance: Any, _schema: Any) -> Iterator[ValidationError]:
    """The ``pattern`` keyword with the ECMA-262 meaning that JSON Schema gives it, as an editor checks it."""
    if isinstance(instance, str) and not _ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@lru_cache(maxsize=64)
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` for Python's re: ``$`` ends the text (Python's also matches before a final newline, which let
    'name\\n' pass), and \\d, \\w are ASCII (Python's \\d also takes digits like '１')."""
    out, in_class, i = [], False, 0
    while i < len(pattern):
        char = pattern[i : i + 2] if pattern[i] == "\\" else pattern[i]
        if char == "[" or (char == "]" and in_class):
            in_class = char == "["
        out.append("\\Z" if char == "$" and not in_class else char)
        i += len(char)
    return re.compile("".join(out), re.ASCII)


def _problems(error: ValidationError, doc: Any) -> list[Problem]:
    """hpcx's lines for one jsonschema error; a keyword hpcx has no words for keeps jsonschema's message."""
    path, place = _locate(doc, error.absolute_path)
    keyword, value, instance = str(error.validator), error.validator_value, error.instance
    where = path or "(top level)"
    if keyword == "additionalProperties" and value is False:
        return list(_unknown_keys(instance, error.schema, path, place))
    if keyword == "required":
        missing = [key for key in value if key not in instance]
        return [(place, 1, f"{where}: missing required key {key!r}") for key in missing]
    words = _WORDS.get(keyword)
    text = words(instance, value, error.schema) if words else error.message
    return [(place, _RANK.get(keyword, 3), f"{where}: {text}")]


def _expected(found: Any, types: str | list[str], _schema: Any) -> str:
    return f"expected {' or '.join([types] if isinstance(types, str) else types)}, found {_describe(found)}"


def _spelled(value: Any) -> str:
    """A value as the site file spells it where Python would not: true, false, null (strings and numbers as repr)."""
    return json.dumps(value) if isinstance(value, bool) or value is None else repr(value)


# What is wrong with a value, by the keyword it breaks: (the value, the keyword's value, the schema) -> words.
_WORDS: dict[str, Callable[[Any, Any, Any], str]] = {
    "type": _expected,
    "enum": lambda found, allowed, _: f"{_spelled(found)} is not one of {allowed}",
    "minProperties": lambda _found, least, _: f"needs at least {least} entry",
    "pattern": lambda found, regex, schema: f"{found!r} is not {schema.get('title', 'matching ' + regex)}",
    "minimum": lambda found, least, _: f"{found} is below the minimum {least}",
    "maximum": lambda found, most, _: f"{found} is above the maximum {most}",
}


def _unknown_keys(
    instance: dict[Any, Any], schema: dict[str, Any], path: str, place: tuple[int, ...]
) -> Iterator[Problem]:
    known = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    names = ", ".join(sorted(known)) or "none"
    for i, key in enumerate(instance):
        if key not in known and not any(_ecma_regex(p).search(str(key)) for p in patterns):
            yield (*place, i), 3, f"{_step(path, key)}: unknown key (known keys here: {names})"


def _locate(doc: Any, steps: Iterable[Any]) -> tuple[str, tuple[int, ...]]:
    """The dotted path of a place in ``doc`` (``a.b[0].c``) and its position there (for document order)."""
    path, place, node = "", [], doc
    for step in steps:
        if isinstance(node, list):
            path, position = f"{path}[{step}]", step
        else:
            path, position = _step(path, step), list(node).index(step)
        place.append(position)
        node = node[step]
    return path, tuple(place)


def _step(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (an empty document or value)"
    kind = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "nothing"}
    text = repr(value)
    return f"{kind.get(type(value), type(value).__name__)} {text[:40] + '...' if len(text) > 40 else text}"
