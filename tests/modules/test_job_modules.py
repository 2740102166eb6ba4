"""A rendered job loads the site's modules with the real Lmod and records `module list` in its run directory."""

import json
import subprocess
from pathlib import Path

import pytest

from tests.modules.test_modulefiles import LMOD_INIT, _require, _tree

pytestmark = pytest.mark.mpi  # runs jobs on the local backend


def test_job_loads_site_modules_and_records_them(hpcx, runs_root, tmp_path: Path):
    _require("lmod")
    tree = _tree(tmp_path / "modules", files=("0.1.0.lua",))
    site = tmp_path / "site.yaml"
    site.write_text(
        "version: 1\nclusters:\n  here:\n    scheduler: local\n    partitions:\n"
        "      local: {max_time: UNLIMITED, max_nodes: 1, cpus_per_node: 64, launcher: mpirun}\n"
        "    launchers: {mpirun: {type: mpirun}}\n"
        "environment:\n  module_system: lmod\n  modules: [hpcx/0.1.0]\n"
    )
    env = dict(hpcx.env, MODULEPATH=str(tree))
    # The batch shell finds `module` through the system profile, as on a cluster's compute node.
    assert Path("/etc/profile.d/lmod.sh").exists() or LMOD_INIT.exists()
    env.pop("HPCX_SITE", None)
    proc = subprocess.run(
        [
            "python",
            "-m",
            "hpcx",
            "--json",
            "--site",
            str(site),
            "submit",
            "serial",
            "--",
            "bash",
            "-c",
            'echo "site=$HPCX_SITE"',
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["run_id"]
    type(hpcx)(env).wait_finished(run_id, timeout_s=60)
    run_dir = runs_root / run_id
    assert (run_dir / "modules.txt").read_text().split() == ["hpcx/0.1.0"]
    # The module set HPCX_SITE for the job; the submitting shell had none.
    (out,) = (run_dir / "logs").glob("local-*.out")
    assert "examples/sites/testbed.yaml" in out.read_text()
