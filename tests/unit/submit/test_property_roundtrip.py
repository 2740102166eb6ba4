"""A request -> the sbatch script hpcx renders from its own templates -> that script read back (as sbatch reads
its #SBATCH lines, and as `hpcx submit ./job.sbatch` resolves it) asks for exactly the same job."""

from __future__ import annotations

import dataclasses
import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpcx.site import load_site
from hpcx.spec import format_time, parse_array
from hpcx.submit.sbatch_script import parse_directives
from hpcx.submit.submission import Request, render_script, resolve

SITE = """
version: 1
name: roomy
clusters:
  c:
    scheduler: slurm
    default_partition: cpu
    partitions:
      cpu: {max_time: "7-00:00:00", default_time: "01:00:00", max_nodes: 64, cpus_per_node: 128,
            mem_per_node_mb: 512000, accounts: [physics, chem-1], qos: [normal, long]}
      gpu: {max_time: "2-00:00:00", max_nodes: 16, cpus_per_node: 128, mem_per_node_mb: 512000,
            gpus_per_node: 8, gpu_type: a100}
      any: {max_time: UNLIMITED, max_nodes: 64, cpus_per_node: 128, gpus_per_node: 8}
resources:
  constraint: {flag: --constraint, choices: [ib, eth]}
"""
KINDS = ("serial", "mpi", "torch-ddp", "array")
NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+:@-]{0,20}", fullmatch=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    path = tmp_path_factory.mktemp("site") / "roomy.yaml"
    path.write_text(textwrap.dedent(SITE))
    return load_site(str(path))


def _time_spellings(minutes: int) -> st.SearchStrategy[str]:
    """Every way Slurm lets a user write ``minutes`` whole minutes."""
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    spellings = [str(minutes), f"{minutes}:00", f"{minutes // 60}:{minutes % 60:02d}:00"]
    if days:
        spellings += [f"{days}-{hours}:{mins}", f"{days}-{hours:02d}:{mins:02d}:00"] + (
            [f"{days}-{hours}"] if not mins else []
        )
    return st.sampled_from(spellings)


def _mem_spellings(mem_mb: int) -> st.SearchStrategy[str]:
    spellings = [str(mem_mb), f"{mem_mb}M", f"{mem_mb}MB", f"{mem_mb * 1024}K"]
    if mem_mb % 1024 == 0:
        spellings += [f"{mem_mb // 1024}G", f"{mem_mb // 1024}g"]
    return st.sampled_from(spellings)


@st.composite
def requests(draw) -> tuple[Request, dict]:
    """A request that fits the site, spelled as a user may spell it, and the values it must resolve to."""
    partition = draw(st.sampled_from([None, "cpu", "gpu", "any"]))
    kind = draw(st.sampled_from(KINDS))
    gpus = draw(st.integers(0, 8)) if partition in (None, "gpu", "any") else 0
    max_nodes = 16 if partition == "gpu" else 64
    ntasks = draw(st.integers(1, 16))
    want = {
        "nodes": draw(st.integers(1, max_nodes)),
        "ntasks_per_node": ntasks,
        "cpus_per_task": draw(st.integers(1, 128 // ntasks)),
        "gpus_per_node": gpus,
        "mem_mb": draw(st.none() | st.integers(1, 512000)),
        "time_min": draw(st.integers(1, 2 * 1440)),
        "account": draw(st.none() | st.sampled_from(["physics", "chem-1"])) if partition != "gpu" else None,
        "qos": draw(st.none() | st.sampled_from(["normal", "long"])) if partition != "gpu" else None,
        "name": draw(NAME),
    }
    options = {"partition": partition, "name": want["name"], "account": want["account"], "qos": want["qos"]}
    options["time"] = draw(st.none() | _time_spellings(want["time_min"]))
    if options["time"] is None:  # the partition's default time, else hpcx's: whichever, read back the same
        del want["time_min"]
    for key in ("nodes", "ntasks_per_node", "cpus_per_task"):
        options[key] = draw(st.sampled_from([want[key], str(want[key])]))
    options["gpus_per_node"] = str(gpus) if gpus or draw(st.booleans()) else None
    options["mem"] = draw(_mem_spellings(want["mem_mb"])) if want["mem_mb"] else None
    array = draw(st.sampled_from(["0-9", "1,3,5-7", "0-99:3%4", "5"])) if kind == "array" else None
    named = draw(st.sampled_from([{}, {"constraint": "ib"}]))
    words = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=12)
    command = tuple(draw(st.lists(words, min_size=1, max_size=4)))
    return Request(kind, options=options, command=command, named=named, array=array), want


def _read_back(text: str, site, tmp: Path):
    """The rendered script submitted as the user's own: what hpcx resolves it to."""
    script = tmp / "job.sbatch"
    script.write_text(text)
    return resolve(Request(None, script=script), site)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=requests())
def test_a_rendered_script_read_back_asks_for_the_same_job(site, tmp_path, monkeypatch, case):
    for name in [n for n in os.environ if n.startswith("HPCX_")]:
        monkeypatch.delenv(name)
    request, want = case
    prep = resolve(request, site)
    res = prep.spec.resources
    assert {k: getattr(res, k) for k in want} == want
    text = render_script(prep, run_id="r1", run_dir=tmp_path / "run", workdir=tmp_path).text

    found = parse_directives(text)  # as sbatch reads the #SBATCH lines
    expected = {
        "partition": res.partition,
        "nodes": str(res.nodes),
        "ntasks_per_node": str(res.ntasks_per_node),
        "cpus_per_task": str(res.cpus_per_task),
        "time": format_time(res.time_min),
        "name": res.name,
    }
    expected |= {"mem": f"{res.mem_mb}M"} if res.mem_mb else {}
    expected |= {"gpus_per_node": str(res.gpus_per_node)} if res.gpus_per_node else {}
    expected |= {k: getattr(res, k) for k in ("account", "qos") if getattr(res, k)}
    expected |= {"constraint": "ib"} if request.named else {}  # the site's -r constraint=ib: sbatch's -C
    assert found.options == expected
    arrays = [u.split("=", 1)[1] for u in found.unchecked if u.startswith("--array=")]
    assert [parse_array(a) for a in arrays] == ([parse_array(request.array)] if request.array else [])

    back = _read_back(text, site, tmp_path)  # as `hpcx submit ./job.sbatch` resolves it
    # the site's -r constraint=ib is sbatch's -C: read back, it is the request's constraint
    assert back.spec.resources == dataclasses.replace(res, constraint="ib" if request.named else None)
    assert back.partition == prep.partition
