"""runs: list the run directories."""

from __future__ import annotations

from typing import Any

from hpcx.cli.app import Ctx, cli, pass_ctx
from hpcx.runs import list_runs


def render_runs(doc: dict[str, Any]) -> str:
    if not doc["runs"]:
        return f"no runs under {doc['root']}"
    lines = [f"runs under {doc['root']} ({doc['root_source']}):"]
    lines += [f"  {r['run_id']}  {r.get('scheduler', '-')} job {r.get('job_id', '-')}" for r in doc["runs"]]
    return "\n".join(lines)


@cli.command("runs")
@pass_ctx
def runs_cmd(obj: Ctx) -> None:
    """List the run directories under the runs root."""
    root, source = obj.runs_root
    rows = [{"run_id": r.id, "run_dir": str(r.dir), **r.job} for r in list_runs(root)]
    obj.emit("runs", {"root": str(root), "root_source": source, "runs": rows}, render_runs)
