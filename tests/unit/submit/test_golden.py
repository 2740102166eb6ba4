"""Golden files: the exact script each (site, kind) renders, as a person would read it in review.

Regenerate after an intended change with HPCX_UPDATE_GOLDEN=1 and read the diff before committing.
"""

import os
import sys
from pathlib import Path

import pytest

from hpcx.site import load_site
from hpcx.submit.submission import Request, render_script, resolve

REPO = Path(__file__).resolve().parents[3]
GOLDEN = REPO / "tests" / "golden"
SITES = {"local": None, "testbed": str(REPO / "examples" / "sites" / "testbed.yaml")}
CASES = {
    "serial": Request("serial", {"time": "20", "name": "prep"}, {"dataset": "run 1"}, ("python", "prep.py")),
    "mpi": Request(
        "mpi",
        {"nodes": "2", "ntasks_per_node": "2", "time": "30"},
        {},
        ("python", "examples/allreduce_hdf5.py", "--rows", "1024"),
    ),
    "torch-ddp": Request(
        "torch-ddp",
        {"nodes": "1", "ntasks_per_node": "1", "time": "1:00:00"},
        {"mode": "torchrun"},
        ("python", "train.py", "--lr", "0.1"),
    ),
    "array": Request("array", {"time": "10"}, {}, ("python", "task.py"), array="0-9%2"),
}


@pytest.mark.parametrize("site_name", SITES)
@pytest.mark.parametrize("kind", CASES)
def test_rendered_script_matches_golden(site_name, kind, monkeypatch):
    # the same script for root and users
    monkeypatch.setattr("hpcx.submit.launchers.os.geteuid", lambda: 1000)
    monkeypatch.delenv("HPCX_TEMPLATE_DIR", raising=False)
    site = load_site(SITES[site_name])
    request = CASES[kind]
    if site.scheduler == "local":  # one machine: one node
        request = Request(
            request.kind,
            {**request.options, "nodes": "1"},
            request.variables,
            request.command,
            array=request.array,
        )
    prep = resolve(request, site)
    run_dir = Path("/scratch/alice/hpcx-runs/20260101-120000-abc123")
    text = render_script(prep, run_id=run_dir.name, run_dir=run_dir, workdir=Path("/home/alice/project")).text
    text = text.replace(site.python or sys.executable, "/opt/hpcx/bin/python")
    golden = GOLDEN / f"{site_name}-{kind}.sbatch"
    if os.environ.get("HPCX_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}: run with HPCX_UPDATE_GOLDEN=1"
    assert text == golden.read_text()
