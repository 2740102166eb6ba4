"""hpcx.io.hdf5 on the test cluster: 4 ranks over both nodes write one file collectively (and through the
per-rank fallback); the run's report shows the bytes each rank wrote and the layout chosen."""

import json

import pytest

pytestmark = pytest.mark.slurm


@pytest.mark.parametrize("layout", ["auto", "per-rank"])
def test_four_ranks_on_two_nodes_round_trip(slurm_hpcx, runs_root, layout):
    out = runs_root / f"data-{layout}.h5"
    doc = slurm_hpcx.json(
        "submit",
        "mpi",
        "--nodes",
        "2",
        "--ntasks-per-node",
        "2",
        "--",
        "python",
        "tests/mpi/hdf5_roundtrip.py",
        str(out),
        "--layout",
        layout,
    )
    row = slurm_hpcx.wait_finished(doc["run_id"], timeout_s=240)
    logs = slurm_hpcx("logs", doc["run_id"]).stdout
    assert row["state"] == "COMPLETED" and row["exit_code"] == 0, logs
    chosen = "mpio" if layout == "auto" else "per-rank"
    assert f"roundtrip ok: 50 datasets, layout {chosen}" in logs, logs

    text = slurm_hpcx("report", doc["run_id"]).stdout
    assert "4 ranks on 2 nodes (n1, n2)" in text and f"HDF5 {out}: {chosen}" in text, text
    report = json.loads((runs_root / doc["run_id"] / "report" / "report.json").read_text())
    io = report["io"]
    assert [r["rank"] for r in io["ranks"]] == [0, 1, 2, 3]
    assert io["ranks"][1]["write"]["bytes"] == 0  # rank 1's slabs are empty by design
    assert all(io["ranks"][r]["write"]["bytes"] > 0 for r in (0, 2, 3))
    assert io["hdf5_files"][str(out)]["layout"] == chosen and io["hdf5_files"][str(out)]["ranks"] == 4


def test_a_job_without_mpi_meets_on_the_reserved_port(slurm_hpcx, runs_root):
    """HPCX_MPI=0: 4 ranks over both nodes bring up torch.distributed on the port `srun --resv-ports=1` reserved
    (the test site's srun launcher asks for it), and write HDF5 through the per-rank fallback."""
    out = runs_root / "nompi"
    doc = slurm_hpcx.json(
        "submit",
        "mpi",
        "--nodes",
        "2",
        "--ntasks-per-node",
        "2",
        "--",
        "env",
        "HPCX_MPI=0",
        "python",
        "tests/mpi/no_mpi_worker.py",
        str(out),
    )
    row = slurm_hpcx.wait_finished(doc["run_id"], timeout_s=240)
    logs = slurm_hpcx("logs", doc["run_id"]).stdout
    assert row["state"] == "COMPLETED" and row["exit_code"] == 0, logs
    docs = [json.loads(line) for line in logs.splitlines() if line.startswith('{"rank"')]
    assert sorted(d["rank"] for d in docs) == [0, 1, 2, 3], logs
    ports = {d["port"] for d in docs}
    assert len(ports) == 1 and 12000 <= ports.pop() <= 12999
    assert all(d["mpi"] == "TorchComm" and d["sum"] == 10.0 and d["layout"] == "per-rank" for d in docs)
