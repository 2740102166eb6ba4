"""User values become one shell word on one line, and reach the job verbatim without executing anything."""

import subprocess

from hypothesis import given, settings
from hypothesis import strategies as st

from hpcx.templates import join_argv, quote

HOSTILE = [
    "$(touch pwned)",
    "`touch pwned`",
    "a'b",
    'a"b',
    "a\nb",
    "\n#SBATCH --wrap=x",
    "x; rm -rf /",
    "naïve ☃",
    "\\",
    "$HOME",
    "*",
    "",
    " ",
    "-n",
    "a\tb\r",
    "x" * 10_000,
]
# Text a shell can carry: anything but NUL (bash strings cannot hold it; quote() rejects it).
shell_text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=300)


def _echo_back(words: list[str]) -> list[str]:
    script = f"printf '%s\\0' {join_argv(words)}\n"
    out = subprocess.run(["bash", "-c", script], capture_output=True, timeout=10, cwd="/tmp").stdout
    return out.decode("utf-8", "surrogateescape").split("\0")[:-1]


def test_hostile_values_reach_the_command_verbatim(tmp_path):
    assert _echo_back(HOSTILE) == HOSTILE
    assert not (tmp_path / "pwned").exists() and not __import__("os").path.exists("/tmp/pwned")


@settings(max_examples=200, deadline=None)
@given(st.lists(shell_text, min_size=1, max_size=4))
def test_any_text_round_trips_through_bash(words):
    quoted = join_argv(words)
    assert "\n" not in quoted and "\r" not in quoted  # no value can start a new line
    assert _echo_back(words) == words


def test_plain_tokens_are_left_alone():
    assert quote("gpu:tesla:2") == "gpu:tesla:2"
    assert quote(4) == "4"
    assert quote("/path/to/x.py") == "/path/to/x.py"
