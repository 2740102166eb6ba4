"""The site file's schema (JSON Schema, Draft 2020-12), and ``validate``, which reports one line per problem.

The same dictionary is published as docs/site-schema.json for editors, so the two cannot drift.
"""

from __future__ import annotations

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

# Node names as Slurm writes a host list: n[1-4],gpu01 (-w and -x are checked against them).
_HOSTS = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._,\[\]-]*$"}

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
        "nodes": _HOSTS,
    },
    "required": ["count", "cpus"],
}

# A partition's keys repeat NODE_TYPE's where a uniform partition says what a node group says: that is the
# published schema's shape, kept flat so an admin reads it as the site file is written.
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
        "nodes": _HOSTS,
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


def validate(doc: Any, schema: dict[str, Any] = SITE_SCHEMA) -> list[str]:
    """Return one line per problem: the path, the value found, and what was expected. Empty means valid.

    The checking is jsonschema's (Draft 2020-12), imported here and only here: loading a site file that is
    cached as valid costs no import of it."""
    from hpcx.site.validator import problems

    return problems(doc, schema)
