"""A job submitted from inside another hpcx job (a sweep task, a pipeline step) is a job of its own: it does not
inherit the parent's task offset, parameters, run directory or profiling switch."""

from __future__ import annotations


def test_an_array_submitted_from_inside_a_sweep_task_has_its_own_ids_and_no_parent_values(hpcx, tmp_path):
    parent = {
        "HPCX_TASK_OFFSET": "100",
        "HPCX_TASK_ID": "107",
        "HPCX_PARAM_LR": "0.1",
        "HPCX_VAR_SEED": "9",
        "HPCX_RUN_DIR": str(tmp_path / "parent-run"),
        "HPCX_PROFILE": "0",
        "HPCX_PROFILE_DIR": str(tmp_path / "parent-run" / "profile"),
    }
    hpcx.env.update(parent)
    doc = hpcx.json(
        "submit",
        "array",
        "--array",
        "0-1",
        "--",
        "bash",
        "-c",
        'echo "task=$HPCX_TASK_ID lr=${HPCX_PARAM_LR-unset} seed=${HPCX_VAR_SEED-unset} '
        'profile=${HPCX_PROFILE-unset} dir=$HPCX_RUN_DIR"',
    )
    assert hpcx.wait_finished(doc["run_id"])["state"] == "COMPLETED"
    out = hpcx("logs", doc["run_id"]).stdout
    for task in (0, 1):
        assert f"task={task} lr=unset seed=unset profile=unset dir={doc['run_dir']}" in out, out
    assert not (tmp_path / "parent-run").exists()
