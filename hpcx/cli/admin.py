"""testbed up/down/status."""

from __future__ import annotations

from pathlib import Path

import click

from hpcx import _proc
from hpcx.cli.app import cli
from hpcx.errors import UsageError


def testbed_script() -> Path:
    """scripts/testbed of the source checkout hpcx runs from (the test bed is a developer tool)."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "testbed"
    if not script.is_file():
        raise UsageError(
            f"{script} not found: the test bed needs a source checkout of hpcx",
            hint="git clone the hpcx repository and run `scripts/testbed up` there",
        )
    return script


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("action", type=click.Choice(["up", "down", "status"]))
def testbed(action: str) -> None:
    """Start, stop or check the local Slurm test cluster (needs root; see scripts/testbed)."""
    # The script bounds its own waits; this timeout only stops a wedged script from hanging the CLI.
    code = _proc.run_passthrough(["bash", str(testbed_script()), action], timeout_s=600)
    click.get_current_context().exit(code)
