"""`hpcx site validate` calls a site valid only when every cross-reference and every default in it holds, and an
error about a value names where the value was set (the environment, the site file), not a flag never typed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from hpcx import __version__
from hpcx.errors import ConfigError, UsageError
from hpcx.site import load_site
from hpcx.spec import build_resources, check_token

REPO = Path(__file__).resolve().parents[3]
TESTBED = REPO / "examples" / "sites" / "testbed.yaml"


def _site(tmp_path: Path, change) -> Path:
    """The testbed site file with ``change(doc)`` applied."""
    doc = yaml.safe_load(TESTBED.read_text())
    change(doc)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _cluster(doc):
    return doc["clusters"]["hpcxtest"]


def _validate(hpcx, path: Path):
    return hpcx("site", "validate", str(path), check=False)


@pytest.mark.parametrize(
    "change, line",
    [
        (
            lambda d: _cluster(d).update(default_partition="compute"),
            "clusters.hpcxtest.default_partition: 'compute' is not a partition of cluster hpcxtest "
            "(partitions: debug, batch, gpu)",
        ),
        (
            lambda d: _cluster(d)["partitions"]["batch"].update(launcher="mpirun"),
            "clusters.hpcxtest.partitions.batch.launcher: 'mpirun' is not defined under "
            "clusters.hpcxtest.launchers (defined: srun)",
        ),
        (
            lambda d: _cluster(d)["partitions"]["batch"].update(
                max_time="7-00:00:00", default_time="8-00:00:00"
            ),
            "clusters.hpcxtest.partitions.batch.default_time: 8-00:00:00 is longer than the partition's "
            "max_time 7-00:00:00",
        ),
        (
            lambda d: d.update(defaults={"partition": "nonexist"}),
            "defaults.partition: 'nonexist' is not a partition (partitions: debug, batch, gpu)",
        ),
        (
            lambda d: d.update(defaults={"time": "99:00:00"}),
            "defaults.time: 99:00:00 (4-03:00:00) exceeds the max_time of every partition (longest: 2-00:00:00)",
        ),
        (
            lambda d: d.update(defaults={"partition": "debug", "time": "01:00:00"}),
            "defaults.time: 01:00:00 exceeds the max_time of partition debug (00:30:00)",
        ),
        (
            lambda d: d.update(defaults={"nodes": 3}),
            "defaults.nodes: 3 exceeds every partition's MaxNodes (at most 2)",
        ),
        (
            lambda d: d.update(defaults={"mem": "8G"}),
            "defaults.mem: 8G (8192M) exceeds every partition's memory per node (at most 4000M)",
        ),
        (
            lambda d: d.update(defaults={"ntasks_per_node": 2, "cpus_per_task": 4}),
            "defaults.ntasks_per_node x defaults.cpus_per_task: 8 CPUs per node exceeds every partition's nodes "
            "(at most 4 CPUs)",
        ),
        (  # the partition's key is `accounts`: a default account was never checked against it
            lambda d: (
                _cluster(d)["partitions"]["batch"].update(accounts=["physics", "chem"]),
                d.update(defaults={"partition": "batch", "account": "bio"}),
            ),
            "defaults.account: 'bio' is not allowed on partition batch (allowed: chem, physics)",
        ),
        (
            lambda d: (
                _cluster(d)["partitions"]["batch"].update(qos=["normal"]),
                d.update(defaults={"partition": "batch", "qos": "high"}),
            ),
            "defaults.qos: 'high' is not allowed on partition batch (allowed: normal)",
        ),
        (
            lambda d: d.update(defaults={"kind": "mpii"}),
            "defaults.kind: 'mpii' has no template mpii.sbatch.j2",
        ),
        (
            lambda d: d.update(template_dirs=["no-such-dir"]),
            "template_dirs[0]: 'no-such-dir' is not a directory",
        ),
        (
            lambda d: d["energy"].update(pue=0.5),
            "energy.pue: 0.5 is below the minimum 1",
        ),
        (
            lambda d: d["energy"].update(carbon_intensity_g_per_kwh=99999),
            "energy.carbon_intensity_g_per_kwh: 99999 is above the maximum 2000",
        ),
        (
            lambda d: d.update(name="testbed\n"),
            "name: 'testbed\\n' is not a plain name",
        ),
        (
            lambda d: _cluster(d)["partitions"]["debug"].update(max_time="00:30:00\n"),
            "clusters.hpcxtest.partitions.debug.max_time: '00:30:00\\n' is not a Slurm time",
        ),
        (  # with a default time to check against it: still the partition's key, not a flag nobody typed
            lambda d: (
                _cluster(d)["partitions"]["debug"].update(max_time=0),
                d.update(defaults={"time": "00:10:00"}),
            ),
            "clusters.hpcxtest.partitions.debug.max_time: 0 is not a positive time",
        ),
    ],
)
def test_site_validate_refuses_a_broken_site_naming_the_key(hpcx, tmp_path, change, line):
    path = _site(tmp_path, change)
    proc = _validate(hpcx, path)
    assert proc.returncode == 2, proc.stdout
    assert f"site file '{path}' is invalid:" in proc.stderr
    assert f"\n  {line}" in proc.stderr


def test_the_shipped_site_and_sound_defaults_stay_valid(hpcx, tmp_path):
    assert _validate(hpcx, TESTBED).returncode == 0
    sound = _site(
        tmp_path,
        lambda d: d.update(
            defaults={
                "partition": "batch",
                "time": "1-00:00:00",
                "kind": "mpi",
                "nodes": 2,
                "mem": "4000M",
                "cpus_per_task": 4,
            }
        ),
    )
    assert _validate(hpcx, sound).returncode == 0


def test_a_site_cached_as_valid_by_an_older_validator_is_checked_again(tmp_path, monkeypatch):
    # hpcx 0.1.0 keyed its cache on its version and the file's bytes only: a file it accepted (pue 0.5) stayed
    # accepted after the checks were fixed. The key now covers the checking code itself.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = _site(tmp_path, lambda d: d["energy"].update(pue=0.5))
    raw = path.read_bytes()
    old_key = hashlib.sha256(__version__.encode() + b"\0" + raw).hexdigest()
    (tmp_path / "cache" / "hpcx").mkdir(parents=True)
    (tmp_path / "cache" / "hpcx" / f"site-{old_key}.json").write_text(json.dumps(yaml.safe_load(raw)))
    with pytest.raises(ConfigError, match="energy.pue: 0.5 is below the minimum 1"):
        load_site(str(path))


def test_a_tab_in_a_site_file_is_a_usage_error_with_a_hint(hpcx, tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(TESTBED.read_text().replace("    default_partition", "\tdefault_partition"))
    proc = _validate(hpcx, path)
    assert proc.returncode == 2
    assert "is not valid YAML at line 8" in proc.stderr and "YAML does not allow tabs" in proc.stderr


def test_a_tab_in_a_sweep_spec_is_a_usage_error(hpcx, tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("name: s\nkind: serial\ncommand: ['true']\nparameters:\n\tlr: [1, 2]\n")
    proc = hpcx("--site", str(TESTBED), "sweep", str(spec), "--dry-run", check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"sweep spec '{spec}' is not valid YAML" in proc.stderr and "does not allow tabs" in proc.stderr


def test_an_environment_value_is_named_as_the_variable(hpcx):
    hpcx.env["HPCX_TIME"] = "2h"
    proc = hpcx("--site", str(TESTBED), "render", "serial", "--", "true", check=False)
    assert proc.returncode == 2
    assert "HPCX_TIME='2h' is not a Slurm time" in proc.stderr and "--time" not in proc.stderr


def test_a_site_default_that_a_chosen_partition_refuses_says_it_came_from_the_site_file(hpcx, tmp_path):
    path = _site(tmp_path, lambda d: d.update(defaults={"time": "01:00:00"}))
    proc = hpcx("--site", str(path), "render", "serial", "-p", "debug", "--", "true", check=False)
    assert proc.returncode == 3
    assert (
        f"defaults.time 01:00:00 (from the site file {path}) exceeds partition debug's MaxTime 00:30:00"
        in proc.stderr
    )
    assert "--time" not in proc.stderr


def test_a_user_config_default_is_named_with_its_file(hpcx, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("version: 1\ndefaults: {mem: lots}\n")
    hpcx.env["HPCX_CONFIG"] = str(config)
    proc = hpcx("--site", str(TESTBED), "render", "serial", "--", "true", check=False)
    assert proc.returncode == 2
    assert f"defaults.mem 'lots' (from the user config {config}) is not a memory size" in proc.stderr


def test_values_are_named_by_origin_and_a_trailing_newline_is_no_plain_name():
    with pytest.raises(UsageError, match=r"^HPCX_NODES='two' is not a whole number; e.g. HPCX_NODES=2"):
        build_resources({"nodes": "two"}, origins={"nodes": ("env", None)})
    site = ("site", "/etc/hpcx/site.yaml")
    with pytest.raises(UsageError, match=r"^defaults.mem 'lots' \(from the site file /etc/hpcx/site.yaml\)"):
        build_resources({"mem": "lots"}, origins={"mem": site})
    with pytest.raises(UsageError, match=r"--partition 'debug\\n' is not a plain name"):
        check_token("partition", "debug\n")


def test_site_show_lists_each_node_type_with_its_gpus(hpcx):
    shown = hpcx("--site", str(TESTBED), "site", "show").stdout
    debug = next(line for line in shown.splitlines() if line.strip().startswith("debug"))
    assert "nodes: 1 x (4 CPUs, 4000M, no GPUs); 1 x (4 CPUs, 4000M, 2 GPUs tesla)" in debug
    assert "gpus_per_node=0" not in debug
    gpu = next(line for line in shown.splitlines() if line.strip().startswith("gpu "))
    assert "cpus_per_node=4 gpus_per_node=2" in gpu


def test_an_automatic_choice_without_gpus_says_so(hpcx):
    local_site = hpcx("--json", "submit", "--dry-run", "serial", "--", "true")
    assert "up to 0 GPUs" not in local_site.stdout and "no GPUs)" in local_site.stdout


def test_config_show_lists_the_template_directories_with_their_source(hpcx, tmp_path):
    mine, env_dir, admin = tmp_path / "mine", tmp_path / "env", tmp_path / "admin"
    for d in (mine, env_dir, admin):
        d.mkdir()
    (tmp_path / "config.yaml").write_text(f"version: 1\ntemplate_dirs: [{mine}]\n")
    site = _site(tmp_path, lambda d: d.update(template_dirs=[str(admin)]))
    hpcx.env.update(HPCX_CONFIG=str(tmp_path / "config.yaml"), HPCX_TEMPLATE_DIR=str(env_dir))
    rows = hpcx.json("--site", str(site), "config", "show")["values"]
    dirs = [(r["value"], r["source"]) for r in rows if r["key"] == "template_dir"]
    assert dirs == [
        (str(mine), "user"),
        (str(admin), "site"),
        (str(env_dir), "env"),
        (str(REPO / "job_templates"), "builtin"),
    ]
