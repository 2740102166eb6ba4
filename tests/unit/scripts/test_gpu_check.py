"""scripts/gpu-check, the one device call of the GPU checks: on a machine without a GPU it does not stop at once,
writes its table with a row for every step and an honest status for each, and one step that fails, hangs or
cannot run never ends the others."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "gpu-check"
GPU_STEPS = {"profile-gpu", "ddp-comm-hook-nccl"}


def _load():
    loader = importlib.machinery.SourceFileLoader("gpu_check", str(SCRIPT))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("gpu_check", loader))
    sys.modules["gpu_check"] = module  # its dataclasses look their module up while it loads
    loader.exec_module(module)
    return module


gc = _load()


def _run(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    environ = {k: v for k, v in os.environ.items() if k not in ("OUT", "GPU_CHECK_ALLOW_CPU")}
    environ.update(CUDA_VISIBLE_DEVICES="", **env)  # no GPU, also where the tests run on a GPU machine
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=environ,
        cwd=tmp_path,
    )
    return proc, json.loads((out / "gpu-check.json").read_text())


def test_the_plan_on_a_cpu_machine_has_a_row_for_every_step_and_no_gpu_row_is_ok(tmp_path):
    proc, doc = _run(tmp_path, "--plan", "--cpu")
    assert proc.returncode == 0, proc.stderr
    table = (tmp_path / "out" / "gpu-check.md").read_text()
    assert table.startswith("# GPU check (scripts/gpu-check)\n") and "\n| GPU | " in table
    assert "| step | measurement | value | unit | target | met | status | seconds | note |" in table
    rows = doc["rows"]
    assert [s.name for s in gc.STEPS] == list(dict.fromkeys(r["step"] for r in rows))
    for row in rows:
        assert f"| {row['step']} | {row['measurement']} |" in table
        if row["step"] in GPU_STEPS:
            assert row["status"] == "unavailable: --cpu: the GPU steps are not run", row
        else:
            assert row["status"] == "not run (--plan)" or row["status"].startswith("unavailable: "), row
    assert not doc["gpu"] and doc["plan"]


def test_without_a_gpu_it_finishes_its_table_and_says_so_in_its_exit_status(tmp_path):
    proc, doc = _run(tmp_path, "--only", "profile-gpu,ddp-comm-hook-nccl")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "no GPU: its rows are unavailable" in proc.stdout
    assert {r["step"] for r in doc["rows"]} == GPU_STEPS
    for row in doc["rows"]:
        assert row["status"].startswith("unavailable: no CUDA GPU (nvidia-smi "), row
        assert row["value"] is None
    allowed, _ = _run(tmp_path, "--only", "profile-gpu", GPU_CHECK_ALLOW_CPU="1")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


@pytest.fixture
def check(tmp_path, monkeypatch):
    monkeypatch.setattr(gc, "MIN_COMMAND_S", 0.5)
    (tmp_path / "out").mkdir()
    (tmp_path / "work").mkdir()
    c = gc.Check(tmp_path / "out", tmp_path / "work", sys.executable, budget_s=60.0)
    c.machine = {"modules": {"json": True, "hpcx": True}, "cuda_available": False, "nvidia_smi": "not found"}
    return c


def _step(name, run, needs="json"):
    return gc.Step(name, run, f"{name}_value", needs)


def test_a_failing_step_a_hanging_one_and_a_broken_one_are_each_recorded_and_the_next_still_runs(
    check, tmp_path
):
    pid_file = tmp_path / "grandchild.pid"
    hang = "import subprocess, sys; p = subprocess.Popen(['sleep', '60']); open(sys.argv[1], 'w').write(str(p.pid)); p.wait()"

    def fails(c):
        gc.require_ok(c.run("fails", [sys.executable, "-c", "import sys; sys.exit('no NCCL here') "], 30))

    def hangs(c):
        c.run("hangs", [sys.executable, "-c", hang, pid_file], 1)

    def broken(c):
        return [gc.Row("", "x", 1 / 0)]

    def works(c):
        out = c.run("works", [sys.executable, "-c", "print('{\"v\": 2}')"], 30)
        return [gc.Row("", "works_value", gc.last_json(out.stdout)["v"], "s")]

    t0 = time.monotonic()
    rows = []
    for name, run in (("fails", fails), ("hangs", hangs), ("broken", broken), ("works", works)):
        rows += gc.run_step(_step(name, run), check)
    status = {r.step: r.status for r in rows}
    assert status["fails"] == "failed (exit 1)" and rows[0].note == "no NCCL here"
    assert status["hangs"] == "timed out (after 1 s)"
    assert status["broken"] == "failed (gpu-check: ZeroDivisionError: division by zero)"
    assert status["works"] == "ok" and rows[-1].value == 2
    assert time.monotonic() - t0 < 20  # the hang was ended at its limit, not waited for
    grandchild = int(pid_file.read_text())
    for _ in range(50):  # the whole process group was ended, not only the command
        state = Path(f"/proc/{grandchild}/status")
        if not state.exists() or "zombie" in state.read_text():
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the hanging command's child {grandchild} outlived it")
    gc.write_outputs(check, rows)
    table = (check.out / "gpu-check.md").read_text()
    assert "| fails | fails_value | - |  |  |  | failed (exit 1) |" in table
    assert "| works | works_value | 2 | s |  |  | ok |" in table
    log = (check.out / "gpu-check.log").read_text()
    assert "===== fails: exit 1" in log and "===== hangs: exit None" in log and "no NCCL here" in log


def test_a_missing_module_or_a_spent_budget_makes_a_step_unavailable_without_running_it(check):
    ran = []
    missing = gc.run_step(_step("needs-more", ran.append, "json no_such_module hpcx"), check)
    assert missing[0].status == f"unavailable: Python module(s) missing in {sys.executable}: no_such_module"
    check.budget_s = 1.0
    late = gc.run_step(_step("late", lambda c: c.run("late", ["true"], 30)), check)
    assert late[0].status == "unavailable: the run's time budget (1 s) was spent before late"
    gpu = gc.run_step(_step("gpu", ran.append, "GPU json"), check)
    assert gpu[0].status == "unavailable: no CUDA GPU (nvidia-smi not found; torch not importable sees none)"
    assert ran == []


def test_the_steps_own_output_becomes_rows_with_targets_and_honest_test_statuses(tmp_path):
    assert gc.last_json('progress {not json\n{"a": 1}\nmore\n{\n "b": {"c": 2}\n}\ntrailer\n') == {
        "b": {"c": 2}
    }
    assert gc.last_json("no json here") is None
    bench = gc.result_row({"metric": "ddp_runtime_overhead", "value": 1.02, "unit": "ratio", "target": 1.01})
    assert (bench.target, bench.met) == ("<= 1.01", "no")
    higher = gc.result_row({"metric": "speedup", "value": 3.0, "unit": "x", "target": 2, "better": "higher"})
    assert (higher.target, higher.met) == (">= 2", "yes")
    xml = tmp_path / "junit.xml"
    xml.write_text(
        '<testsuites><testsuite><testcase classname="tests.gpu.test_gpu" name="test_a" time="1.5"/>'
        '<testcase classname="tests.gpu.test_gpu" name="test_b" time="2"><failure message="mpirun: not found"/>'
        '</testcase><testcase classname="tests.gpu.test_nccl" name="test_c" time="0">'
        '<skipped message="no CUDA GPU on this machine"/></testcase></testsuite></testsuites>'
    )
    import xml.etree.ElementTree as ET

    rows = [gc.junit_row(case, 1) for case in ET.parse(xml).iter("testcase")]
    assert [(r.measurement, r.value, r.status) for r in rows] == [
        ("test_gpu::test_a", "passed", "ok"),
        ("test_gpu::test_b", "failed", "failed (exit 1)"),
        ("test_nccl::test_c", "skipped", "unavailable: skipped: no CUDA GPU on this machine"),
    ]
    assert rows[1].note == "2.0 s: mpirun: not found"
