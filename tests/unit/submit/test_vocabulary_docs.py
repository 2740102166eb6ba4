"""docs/user.md's table of sbatch's options is the table hpcx reads them by: each option, its short form, and
whether hpcx checks it or passes it on."""

import re
from pathlib import Path

from hpcx.submit.vocabulary import OPTIONS

USER_MD = Path(__file__).resolve().parents[3] / "docs" / "user.md"


def _rows() -> dict[str, tuple[str, str]]:
    rows = re.findall(
        r"^\| `(--[a-z-]+)` \| (`-[A-Za-z]`)? \| [^|]+ \| (checked|passed on)", USER_MD.read_text(), re.M
    )
    return {long: (short.strip("`"), status) for long, short, status in rows}


def test_every_option_is_in_the_users_table_as_hpcx_treats_it():
    want = {o.long: (o.short or "", "checked" if o.checked else "passed on") for o in OPTIONS}
    assert _rows() == want


def test_submit_help_groups_the_options_as_sbatch_does(capsys):
    from hpcx.cli import main

    assert main(["submit", "--help"]) == 0
    text = capsys.readouterr().out
    order = [
        text.index(g) for g in ("Parallel run options:", "Constraint options:", "GPU scheduling options:")
    ]
    assert order == sorted(order) and "hpcx options:" in text
    gpu = text[text.index("GPU scheduling options:") : text.index("hpcx options:")]
    assert "--gpus-per-task" in gpu and "--ntasks " not in gpu
