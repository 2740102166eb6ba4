"""The CLI in process, as a user's shell would run it but without a subprocess: click's runner captures the output,
hpcx.cli.main maps errors to exit codes and messages as the installed command does; and an environment with no
HPCX_*/SLURM_* variables, config or cache of the user's."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from hpcx.cli import main


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def run_cli(*argv: str) -> Result:
    runner = CliRunner()
    with runner.isolation() as (out, err, _):
        code = main(list(argv))
    return Result(code, out.getvalue().decode(), err.getvalue().decode())


def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.startswith(("HPCX_", "SLURM_", "SBATCH_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HPCX_RUNS", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
