"""`hpcx site show` and `hpcx config show` are data first: hpcx.site.show builds the document (--json) and the
text from the loaded site and configuration, without the CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hpcx.site import SiteChoice, load_site
from hpcx.site.config import UserConfig
from hpcx.site.show import config_doc, config_text, site_doc, site_text

REPO = Path(__file__).resolve().parents[3]
TESTBED = REPO / "examples" / "sites" / "testbed.yaml"


def test_site_show_lists_each_partition_and_each_node_type_of_a_mixed_one():
    site = load_site(str(TESTBED))
    debug = site.partitions["debug"]
    plain = dataclasses.replace(debug.node_types[1], mem_mb=None, gpu_type=None)
    mixed = dataclasses.replace(debug, node_types=(debug.node_types[0], plain))
    site = dataclasses.replace(site, partitions={"debug": mixed, "gpu": site.partitions["gpu"]})
    doc = site_doc(site, "cli")
    assert doc["origin"] == "cli" and doc["partitions"]["gpu"]["gpus_per_node"] == 2
    assert site_text(doc).splitlines() == [
        f"site testbed ({TESTBED}, from cli): cluster hpcxtest, slurm",
        "  debug      max_time_min=30 max_nodes=2 nodes: 1 x (4 CPUs, 4000M, no GPUs); 1 x (4 CPUs, 2 GPUs)",
        "  gpu        max_time_min=1440 max_nodes=1 cpus_per_node=4 gpus_per_node=2",
    ]


def test_config_show_gives_each_value_the_layer_it_came_from(tmp_path):
    chosen = SiteChoice(load_site(str(TESTBED)), "cli", str(TESTBED))
    user = UserConfig(tmp_path / "config.yaml", defaults={"partition": "batch", "nodes": 2})
    env = {"HPCX_NODES": "1", "HPCX_TIME": "01:00:00"}
    doc = config_doc(chosen, user, (tmp_path / "runs", "env"), [(tmp_path / "mine", "user")], env)
    rows = {r["key"]: (r["value"], r["source"]) for r in doc["values"]}
    assert rows["site"] == (str(TESTBED), "cli") and rows["user_config"] == (
        str(tmp_path / "config.yaml"),
        "found",
    )
    assert rows["nodes"] == ("1", "env") and rows["time"] == ("01:00:00", "env")  # env beats the user config
    assert rows["partition"] == ("batch", "user") and rows["kind"] == ("serial", "default")
    assert rows["template_dir"] == (str(tmp_path / "mine"), "user")
    text = config_text(chosen, doc).splitlines()
    assert text[0] == chosen.describe() == f"site: {TESTBED} (from --site)"
    assert f"{'partition':<18} {'batch':<48} (user)" in text
