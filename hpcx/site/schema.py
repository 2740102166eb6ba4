"""The site file's schema (a JSON Schema subset) and a validator that reports one line per problem.

The same dictionary is published as docs/site-schema.json for editors, so the two cannot drift.
"""

from __future__ import annotations

import re
from typing import Any

_TIME = {
    "type": ["string", "integer"],
    "pattern": r"^((\d+-)?\d+(:\d+){0,2}|[Ii][Nn][Ff][Ii][Nn][Ii][Tt][Ee]|[Uu][Nn][Ll][Ii][Mm][Ii][Tt][Ee][Dd])$",
    "title": "a Slurm time (MM, HH:MM:SS, D-HH:MM:SS or UNLIMITED)",
    "description": "Slurm time: MM, HH:MM:SS or D-HH:MM:SS",
}
_NAME = {
    "type": "string",
    "pattern": r"^[A-Za-z0-9][A-Za-z0-9._+:@-]*$",
    "title": "a plain name (letters, digits, . _ + : @ -)",
}
BLOCKS = ["header", "environment", "setup", "launch", "epilogue"]
RESOURCE = {
    "type": "object",
    "additionalProperties": False,
    "description": "an admin-named resource: the admin spells the sbatch flag, the user gives the value",
    "properties": {
        "flag": {
            "type": "string",
            "pattern": r"^--[a-z][a-z-]*$",
            "title": "an sbatch long option like --constraint",
        },
        "help": {"type": "string"},
        "choices": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["flag"],
}
_COUNT = {"type": "integer", "minimum": 0}
_STRMAP = {"type": "object", "additionalProperties": {"type": ["string", "integer", "number", "boolean"]}}

NODE_TYPE = {
    "type": "object",
    "additionalProperties": False,
    "description": "a group of identical nodes; lets a mixed partition say which nodes have what",
    "properties": {
        "count": {"type": "integer", "minimum": 1},
        "cpus": {"type": "integer", "minimum": 1},
        "mem_mb": {"type": "integer", "minimum": 1},
        "gpus": _COUNT,
        "gpu_type": {"type": "string"},
        "features": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["count", "cpus"],
}

PARTITION = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "max_time": _TIME,
        "default_time": _TIME,
        "max_nodes": {"type": "integer", "minimum": 1},
        "cpus_per_node": {"type": "integer", "minimum": 1},
        "mem_per_node_mb": {"type": "integer", "minimum": 1},
        "gpus_per_node": _COUNT,
        "gpu_type": {"type": "string"},
        "features": {"type": "array", "items": {"type": "string"}},
        "accounts": {"type": "array", "items": _NAME},
        "qos": {"type": "array", "items": _NAME},
        "max_array_size": {"type": "integer", "minimum": 1, "maximum": 4000001},  # Slurm's own ceiling
        "launcher": {"type": "string"},
        "node_types": {"type": "array", "items": NODE_TYPE},
    },
    "required": ["max_time", "max_nodes", "cpus_per_node"],
}

LAUNCHER = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "type": {"enum": ["srun", "mpirun", "torchrun"]},
        "mpi": {"type": "string", "description": "srun --mpi plugin, e.g. pmix"},
        "args": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["type"],
}

CLUSTER = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "scheduler": {"enum": ["slurm", "local"]},
        "default_partition": {"type": "string"},
        "partitions": {"type": "object", "additionalProperties": PARTITION, "minProperties": 1},
        "launchers": {"type": "object", "additionalProperties": LAUNCHER},
    },
    "required": ["scheduler", "partitions"],
}

SITE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "hpcx site file",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "version": {"enum": [1]},
        "name": _NAME,
        "clusters": {"type": "object", "additionalProperties": CLUSTER, "minProperties": 1},
        "environment": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "module_system": {"enum": ["lmod", "tcl", "none"]},
                "modules": {"type": "array", "items": {"type": "string"}},
                "env": _STRMAP,
                "python": {
                    "type": "string",
                    "description": "interpreter for jobs; default: the one running hpcx",
                },
            },
        },
        "template_dirs": {"type": "array", "items": {"type": "string"}},
        "locked_blocks": {"type": "array", "items": {"enum": BLOCKS}},
        "resources": {"type": "object", "additionalProperties": RESOURCE},
        "allow_env": {
            "type": "array",
            "items": {"type": "string"},
            "description": "inherited SBATCH_*/SLURM_* variables that may reach sbatch (all others are removed)",
        },
        "redact_env": {
            "type": "array",
            "items": {"type": "string"},
            "description": "regular expressions (case-insensitive, matched anywhere in the name) naming more "
            "environment variables that the run's provenance record leaves out, on top of the builtin ones "
            "(TOKEN, SECRET, PASSWORD, PASSWD, KEY, CREDENTIAL, AUTH)",
        },
        "runs_root": {"type": "string"},
        "energy": {
            "type": "object",
            "additionalProperties": False,
            "description": "what hpcx report needs to turn measured energy into facility energy and carbon",
            "properties": {
                "carbon_intensity_g_per_kwh": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 2000,
                    "description": "grams of CO2-equivalent per kWh of the electricity the site draws (its "
                    "contract or grid mix); without it reports give no carbon estimate",
                },
                "carbon_source": {
                    "type": "string",
                    "description": "where the intensity comes from (printed beside the estimate)",
                },
                "pue": {
                    "type": "number",
                    "minimum": 1,
                    "maximum": 5,
                    "description": "power usage effectiveness of the machine room: facility energy over IT "
                    "energy; default 1 (IT energy only)",
                },
            },
        },
        "defaults": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "kind": {"type": "string"},
                "partition": {"type": "string"},
                "time": _TIME,
                "nodes": {"type": "integer", "minimum": 1},
                "ntasks_per_node": {"type": "integer", "minimum": 1},
                "cpus_per_task": {"type": "integer", "minimum": 1},
                "mem": {"type": ["string", "integer"]},
                "account": _NAME,
                "qos": _NAME,
                "profile": {
                    "type": "boolean",
                    "description": "profile every job (per-rank records and communication tracing) unless "
                    "the user says --no-profile; default false",
                },
            },
        },
    },
    "required": ["version", "clusters"],
}

_PY_TYPES = {
    "object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "boolean": bool,
    "null": type(None),
}  # fmt: skip


def validate(doc: Any, schema: dict[str, Any] = SITE_SCHEMA, path: str = "") -> list[str]:
    """Return one line per problem: the path, the value found, and what was expected. Empty means valid."""
    where = path or "(top level)"
    if "enum" in schema:
        return [] if doc in schema["enum"] else [f"{where}: {doc!r} is not one of {schema['enum']}"]
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_is_type(doc, n) for n in names):
            return [f"{where}: expected {' or '.join(names)}, found {_describe(doc)}"]
    problems: list[str] = []
    if isinstance(doc, dict):
        problems += _validate_object(doc, schema, path)
    elif isinstance(doc, list) and "items" in schema:
        for i, item in enumerate(doc):
            problems += validate(item, schema["items"], f"{path}[{i}]")
    elif isinstance(doc, str) and "pattern" in schema and not re.fullmatch(schema["pattern"], doc):
        # A full match: Python's $ also matches before a trailing newline, which JSON Schema's does not.
        problems.append(f"{where}: {doc!r} is not {schema.get('title', 'matching ' + schema['pattern'])}")
    elif _is_type(doc, "number"):
        if doc < schema.get("minimum", doc):
            problems.append(f"{where}: {doc} is below the minimum {schema['minimum']}")
        if doc > schema.get("maximum", doc):
            problems.append(f"{where}: {doc} is above the maximum {schema['maximum']}")
    return problems


def _validate_object(doc: dict[str, Any], schema: dict[str, Any], path: str) -> list[str]:
    problems = []
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key in schema.get("required", []):
        if key not in doc:
            problems.append(f"{path or '(top level)'}: missing required key {key!r}")
    if len(doc) < schema.get("minProperties", 0):
        problems.append(f"{path or '(top level)'}: needs at least {schema['minProperties']} entry")
    for key, value in doc.items():
        sub = f"{path}.{key}" if path else str(key)
        if key in props:
            problems += validate(value, props[key], sub)
        elif extra is False:
            known = ", ".join(sorted(props)) or "none"
            problems.append(f"{sub}: unknown key (known keys here: {known})")
        elif isinstance(extra, dict):
            problems += validate(value, extra, sub)
    return problems


def _is_type(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _PY_TYPES[name])


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (an empty document or value)"
    kind = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "nothing"}
    text = repr(value)
    return f"{kind.get(type(value), type(value).__name__)} {text[:40] + '...' if len(text) > 40 else text}"
