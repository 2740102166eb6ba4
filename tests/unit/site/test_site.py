from pathlib import Path

import pytest

from hpcx.errors import ConfigError, RejectedError
from hpcx.site import load_site
from hpcx.spec import Resources
from hpcx.submit.preflight import check

REPO = Path(__file__).resolve().parents[3]
TESTBED = REPO / "examples" / "sites" / "testbed.yaml"


def test_testbed_site_loads_with_its_partitions():
    site = load_site(str(TESTBED))
    assert site.scheduler == "slurm" and site.cluster == "hpcxtest"
    assert set(site.partitions) == {"debug", "batch", "gpu"}
    assert site.partitions["debug"].max_time_min == 30
    assert site.partitions["gpu"].gpu_type == "tesla"
    assert site.launcher_for(site.partitions["debug"]).mpi == "pmix"


def test_builtin_local_site_needs_no_file():
    site = load_site(None)
    assert site.scheduler == "local" and site.source == "builtin"


def _write(tmp_path, text):
    p = tmp_path / "site.yaml"
    p.write_text(text)
    return str(p)


def test_invalid_site_lists_each_problem_with_path_value_and_expectation(tmp_path):
    path = _write(
        tmp_path,
        """
version: 1
clusters:
  c:
    scheduler: pbs
    partitions:
      p: {max_time: "1:00:00", max_nodes: "two", cpus_per_node: 4, colour: red}
""",
    )
    with pytest.raises(ConfigError) as err:
        load_site(path)
    text = str(err.value)
    assert "clusters.c.scheduler: 'pbs' is not one of ['slurm', 'local']" in text
    assert "clusters.c.partitions.p.max_nodes: expected integer, found a string 'two'" in text
    assert "clusters.c.partitions.p.colour: unknown key" in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("version: 1\nclusters: [", "not valid YAML at line"),
        ("just a string", "expected object, found a string"),
        ("version: 2\nclusters: {}", "version: 2 is not one of [1]"),
        ("version: 1", "missing required key 'clusters'"),
    ],
)
def test_malformed_site_files_get_one_clear_message(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        load_site(_write(tmp_path, text))


def test_missing_site_file_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_site(str(tmp_path / "nope.yaml"))


def test_preflight_names_value_limit_and_fix():
    site = load_site(str(TESTBED))
    with pytest.raises(RejectedError) as err:
        check(Resources(partition="debug", time_min=48 * 60), site)
    msg = str(err.value)
    assert "--time 2-00:00:00 exceeds partition debug's MaxTime 00:30:00" in msg
    assert "--partition batch (max 2-00:00:00" in msg
    assert err.value.exit_code == 3


def test_preflight_accepts_what_fits_and_rejects_each_limit():
    site = load_site(str(TESTBED))
    assert check(Resources(partition="gpu", gpus_per_node=2), site).name == "gpu"
    for res, words in [
        (Resources(partition="debug", nodes=3), "MaxNodes 2"),
        (
            Resources(partition="debug", ntasks_per_node=3, cpus_per_task=2),
            "with 6 CPUs each requested, but only 0",
        ),
        (Resources(partition="debug", mem_mb=5000), "5000M each requested"),
        (Resources(partition="debug", gpus_per_node=3), "3 GPUs each requested"),
        (
            Resources(partition="gpu", gpus_per_node=3),
            "--gpus-per-node 3 exceeds partition gpu's 2 GPUs per node",
        ),
        (Resources(partition="gpu", ntasks_per_node=5), "5 CPUs per node exceeds partition gpu's 4"),
        (Resources(partition="nope"), "does not exist"),
    ]:
        with pytest.raises(RejectedError, match=words):
            check(res, site)


def test_validated_site_is_cached_and_a_damaged_cache_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = load_site(str(TESTBED))
    (entry,) = (tmp_path / "cache" / "hpcx").glob("site-*.json")
    assert load_site(str(TESTBED)) == first  # served from the cache: no YAML, no validation
    entry.write_text("{not json")
    assert load_site(str(TESTBED)) == first  # damaged: parsed again and rewritten
    site = tmp_path / "site.yaml"
    site.write_text(TESTBED.read_text().replace('max_time: "00:30:00"', 'max_time: "00:20:00"'))
    assert load_site(str(site)).partitions["debug"].max_time_min == 20  # other bytes, other entry
