"""Site files and user configs are checked by a standard JSON Schema validator (jsonschema, Draft 2020-12): every
keyword of the published schema holds, each problem is one line naming the key path, the value found and what
was expected, in the order of the file; and jsonschema is imported only when a file is validated, so a cached
site file, `import hpcx.cli` and `hpcx render` never pay for it."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from hpcx.cli import main
from hpcx.errors import ConfigError
from hpcx.fsutil import load_yaml
from hpcx.site.config import USER_SCHEMA, load_user_config
from hpcx.site.schema import SITE_SCHEMA, validate

REPO = Path(__file__).resolve().parents[3]
TESTBED = REPO / "examples" / "sites" / "testbed.yaml"
TESTBED_DOC = load_yaml(TESTBED.read_text())
DEBUG = "clusters.hpcxtest.partitions.debug"
TIME = "is not a Slurm time (MM, HH:MM:SS, D-HH:MM:SS or UNLIMITED)"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in [n for n in os.environ if n.startswith(("HPCX_", "SLURM_", "SBATCH_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HPCX_RUNS", str(tmp_path / "runs"))


def _testbed(change) -> dict:
    doc = copy.deepcopy(TESTBED_DOC)
    change(doc)
    return doc


def _debug(doc: dict) -> dict:
    return doc["clusters"]["hpcxtest"]["partitions"]["debug"]


@pytest.mark.parametrize(
    "schema",
    [SITE_SCHEMA, USER_SCHEMA, json.loads((REPO / "docs" / "report-schema.json").read_text())],
    ids=["site", "user", "report"],
)
def test_the_schemas_hpcx_validates_with_are_valid_draft_2020_12(schema):
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(
    "change, line",
    [
        # Python's `True in [1]` held, so `version: true` passed; JSON Schema's enum tells true from 1.
        (lambda d: d.update(version=True), "version: true is not one of [1]"),
        # YAML's .nan passed every minimum and maximum; JSON has no NaN and no infinity.
        (lambda d: d.update(energy={"pue": float("nan")}), "energy.pue: expected number, found float nan"),
        (lambda d: d.update(energy={"pue": float("inf")}), "energy.pue: expected number, found float inf"),
        # JSON Schema's \d is an ASCII digit (ECMA-262), as in an editor; Python's took '１０'.
        (lambda d: _debug(d).update(max_time="１０"), f"{DEBUG}.max_time: '１０' {TIME}"),
        (lambda d: d["defaults"].update(time="１:00:00"), f"defaults.time: '１:00:00' {TIME}"),
    ],
    ids=["enum-bool", "nan", "inf", "fullwidth-max-time", "fullwidth-default-time"],
)
def test_what_the_standard_refuses_is_refused_with_one_line(capsys, tmp_path, change, line):
    doc = _testbed(lambda d: (d.setdefault("defaults", {}), change(d)))
    assert validate(doc) == [line]
    site = tmp_path / "site.yaml"
    site.write_text(json.dumps(doc).replace("NaN", ".nan").replace("Infinity", ".inf"))  # JSON is YAML
    assert main(["site", "validate", str(site)]) == 2
    assert f"  {line}" in capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(
    "change, line",
    [
        (
            lambda d: d.update(name="testbed\n"),
            "name: 'testbed\\n' is not a plain name (letters, digits, . _ + : @ -)",
        ),
        (lambda d: _debug(d).update(max_time="30\n"), f"{DEBUG}.max_time: '30\\n' {TIME}"),
        (lambda d: _debug(d).update(max_nodes=2.0), f"{DEBUG}.max_nodes: expected integer, found float 2.0"),
        (
            lambda d: d.update(locked_blocks=["launch", "footer"]),
            "locked_blocks[1]: 'footer' is not one of ['header', 'environment', 'setup', 'launch', 'epilogue']",
        ),
    ],
    ids=["name-newline", "time-newline", "float-count", "enum-item"],
)
def test_what_hpcx_refused_before_stays_refused_in_the_same_words(change, line):
    # A trailing newline passes Python's `$`, not JSON Schema's; a count of 2.0 would reach sbatch as '2.0'.
    assert validate(_testbed(change)) == [line]


def test_problems_come_in_the_order_of_the_file_with_each_unknown_key_on_its_own_line():
    def change(doc):
        doc["name"] = "a b"
        _debug(doc).update(max_nodes=0, colour="red", shade="dark")
        del doc["clusters"]["hpcxtest"]["partitions"]["gpu"]["max_nodes"]
        doc["clusters"]["hpcxtest"]["launchers"]["srun"]["type"] = "aprun"
        doc["energy"] = {"pue": 9}

    known = (
        "accounts, cpus_per_node, default_time, features, gpu_type, gpus_per_node, launcher, max_array_size, "
        "max_nodes, max_time, mem_per_node_mb, node_types, nodes, qos"
    )
    assert validate(_testbed(change)) == [
        "name: 'a b' is not a plain name (letters, digits, . _ + : @ -)",
        f"{DEBUG}.max_nodes: 0 is below the minimum 1",
        f"{DEBUG}.colour: unknown key (known keys here: {known})",
        f"{DEBUG}.shade: unknown key (known keys here: {known})",
        "clusters.hpcxtest.partitions.gpu: missing required key 'max_nodes'",
        "clusters.hpcxtest.launchers.srun.type: 'aprun' is not one of ['srun', 'mpirun', 'torchrun']",
        "energy.pue: 9 is above the maximum 5",
    ]


def test_a_value_of_the_wrong_type_is_one_line_however_many_keywords_it_breaks():
    # 0.5 is no integer and below the minimum 1: the type says it all.
    doc = _testbed(lambda d: _debug(d).update(max_nodes=0.5))
    assert validate(doc) == [f"{DEBUG}.max_nodes: expected integer, found float 0.5"]
    assert validate(None) == ["(top level): expected object, found nothing (an empty document or value)"]
    assert validate({"version": 1}) == ["(top level): missing required key 'clusters'"]
    assert validate({"version": 1, "clusters": {}}) == ["clusters: needs at least 1 entry"]


def test_a_user_config_is_checked_by_the_same_validator(tmp_path, monkeypatch):
    config = tmp_path / "config" / "hpcx" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("defaults:\n  nodes: 2\n  colour: red\ntemplate_dirs: [1]\n")
    with pytest.raises(ConfigError) as err:
        load_user_config()
    assert err.value.message.splitlines() == [
        f"user config {str(config)!r} is invalid:",
        "  defaults.colour: unknown key (known keys here: account, cpus_per_task, gpus_per_node, kind, mem, "
        "nodes, ntasks_per_node, partition, qos, time)",
        "  template_dirs[0]: expected string, found int 1",
    ]
    config.write_text("defaults:\n  nodes: 2\n")
    assert load_user_config().defaults == {"nodes": 2}  # other bytes: validated again, not the cached refusal
    config.write_text("defaults:\n  nodes: [2]\n")
    with pytest.raises(ConfigError, match=r"defaults\.nodes: expected string or integer, found a list \[2\]"):
        load_user_config()


def _modules_after(code: str, tmp_path: Path) -> set[str]:
    config = tmp_path / "config" / "hpcx" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"site: {TESTBED}\ndefaults:\n  partition: batch\n")
    out = subprocess.run(
        [sys.executable, "-c", f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_importing_the_cli_loads_no_validator(tmp_path):
    assert "jsonschema" not in _modules_after("import hpcx.cli", tmp_path)


def test_a_site_file_and_user_config_once_validated_are_not_validated_again(tmp_path):
    render = "from hpcx.cli import main\nassert main(['render', 'serial', '--', 'true']) == 0"
    assert "jsonschema" in _modules_after(render, tmp_path)  # the first command validates both files
    assert "jsonschema" not in _modules_after(render, tmp_path)  # the next ones read the cache
    assert {p.name.split("-")[0] for p in (tmp_path / "cache" / "hpcx").glob("*-*.json")} == {"site", "user"}
