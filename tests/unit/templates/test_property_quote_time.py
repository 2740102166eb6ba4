"""Rules that hold for every input, checked on generated ones.

- Any string a user can hand hpcx (text, or the bytes of a non-UTF-8 argument as Python decodes them) reaches the
  job's argv byte for byte once quote() has put it into a script, whatever the job's locale.
- Every --time and --mem spelling sbatch accepts (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S; K/M/G/T) parses to the
  minutes and MB Slurm makes of it, and every spelling sbatch refuses is refused. The known answers are Slurm's
  rules (seconds round up to a minute, K rounds up to a MB, 1024 per step); tests/slurm/test_property_sbatch_slurm.py
  checks a sample of the same spellings against `sbatch --test-only` on the test cluster.
"""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hpcx.errors import UsageError
from hpcx.spec import parse_mem_mb, parse_time_min
from hpcx.templates import quote

# --- quote(): any string reaches argv byte for byte -----------------------------------------------------------

# Characters a shell finds hard: quotes, backslashes, expansions, bash's own internal quoting bytes (\x01, \x7f),
# line breaks of every kind, and the bytes a non-UTF-8 argument decodes to (surrogateescape, \udc80-\udcff).
HARD = list("'\"\\$`!*?[]{}~#&|;<>() \t\n\r\x01\x7f\x1b\x0b\x0c\x85\u2028\u2029\u200b\ufeff") + [
    chr(0xDC80 + b)
    for b in (0x00, 0x27, 0x5C, 0x7F)  # the raw bytes \x80, \xa7, \xdc, \xff
]
BYTE = st.integers(0x80, 0xFF).map(lambda b: chr(0xDC00 + b))  # one raw byte, as Python decodes argv
# Everything but NUL (no C string holds it) and the surrogates that stand for no byte.
CHAR = st.one_of(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), st.sampled_from(HARD), BYTE
)
WORD = st.text(CHAR, max_size=60)


def _argv_bytes(word: str) -> bytes:
    """The bytes the job's argv holds for ``word`` (how Python encodes an argument on Linux)."""
    return word.encode("utf-8", "surrogateescape")


def _through_bash(words: list[str], tmp_path, locale: str) -> list[bytes]:
    script = tmp_path / "job.sh"
    # one line per word: no value may start another
    script.write_bytes(b"".join(b"printf '%s\\0' " + _argv_bytes(quote(w)) + b"\n" for w in words))
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": locale}
    out = subprocess.run(["bash", str(script)], capture_output=True, timeout=30, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return out.stdout.split(b"\0")[:-1]


@settings(max_examples=60, deadline=None)
@given(st.lists(WORD, min_size=1, max_size=40))
@example(["plain\n"])  # plain but for a trailing newline, which quote() once let through
def test_any_string_reaches_argv_byte_for_byte(tmp_path_factory, words):
    tmp_path = tmp_path_factory.mktemp("q")
    for word in words:
        assert "\n" not in quote(word) and "\r" not in quote(word)  # one line per value, whatever it holds
    expected = [_argv_bytes(w) for w in words]
    for locale in ("C", "C.UTF-8"):  # \xHH escapes mean the same bytes in every locale
        assert _through_bash(words, tmp_path, locale) == expected


def test_the_hard_characters_each_reach_argv(tmp_path):
    words = HARD + ["".join(HARD), "-n", "", " ", "a'b", "$'x'", "\\x41", "\x01\x01", "plain\n", "0\n", "a\r"]
    assert _through_bash(words, tmp_path, "C.UTF-8") == [_argv_bytes(w) for w in words]


@given(st.text(CHAR, max_size=10), st.text(CHAR, max_size=10))
@settings(max_examples=50, deadline=None)
def test_a_nul_byte_is_refused_never_dropped(before, after):
    with pytest.raises(UsageError, match="contains a NUL byte; remove it"):
        quote(before + "\x00" + after)


# --- --time: Slurm's spellings and their minutes ------------------------------------------------------------

NUM = st.integers(0, 400)


@st.composite
def _field(draw, value: int) -> str:
    """``value`` as a user may write it: as is, or zero-padded (01, 007)."""
    return str(value).zfill(draw(st.integers(0, 3)))


@st.composite
def time_spellings(draw) -> tuple[str, int]:
    """(a spelling of one of Slurm's six time forms, its length in seconds)."""
    form = draw(st.sampled_from(["M", "M:S", "H:M:S", "D-H", "D-H:M", "D-H:M:S"]))
    d, h, m, s = (draw(NUM) for _ in range(4))
    seconds = {
        "M": m * 60,
        "M:S": m * 60 + s,
        "H:M:S": h * 3600 + m * 60 + s,
        "D-H": d * 86400 + h * 3600,
        "D-H:M": d * 86400 + h * 3600 + m * 60,
        "D-H:M:S": d * 86400 + h * 3600 + m * 60 + s,
    }[form]
    fields = {"D": draw(_field(d)), "H": draw(_field(h)), "M": draw(_field(m)), "S": draw(_field(s))}
    return "".join(fields.get(c, c) for c in form), seconds


@settings(max_examples=200, deadline=None)
@given(time_spellings())
def test_every_slurm_time_spelling_becomes_its_minutes_rounded_up(case):
    text, seconds = case
    if seconds == 0:  # Slurm refuses a zero limit ("Requested time limit is invalid")
        with pytest.raises(UsageError, match="must be positive"):
            parse_time_min(text)
    else:
        assert parse_time_min(text) == -(-seconds // 60)


# Ways to break a valid spelling that sbatch answers with "Invalid --time specification".
TIME_BREAKS = {
    "a fourth field": lambda t: t + ":1" if t.count(":") == 2 else t + ":1:2:3",
    "an empty field": lambda t: t + ":",
    "a leading colon": lambda t: ":" + t,
    "two dashes": lambda t: "1-" + t if "-" in t else "1--" + t,
    "a dash after a colon": lambda t: t + ":1-2" if ":" not in t else t + "-1",
    "a unit": lambda t: t + "h",
    "a fraction": lambda t: t + ".5",
    "an inner blank": lambda t: t[:1] + " " + (t[1:] or "0"),
    "a sign": lambda t: "+" + t,
    "a non-ASCII digit": lambda t: t.replace(t[0], "\u0663", 1) if t[0].isdigit() else "\u0663",
    "a full-width digit": lambda t: "\uff11" + t,
}


@settings(max_examples=200, deadline=None)
@given(time_spellings(), st.sampled_from(sorted(TIME_BREAKS)))
def test_every_time_spelling_slurm_refuses_is_refused(case, how):
    text = TIME_BREAKS[how](case[0])
    with pytest.raises(UsageError, match=r"is not a Slurm time|must be positive"):
        parse_time_min(text)


@pytest.mark.parametrize(
    "text", ["", "-", "1-", "-5", ":", "1:2:3:4", "1-2-3", "5m", "1d", "1.5", "INFINITE"]
)
def test_time_spellings_outside_slurms_six_forms_are_refused(text):
    """("1-" and "INFINITE" sbatch itself takes; hpcx asks for one of the six forms, a limit it can check.)"""
    with pytest.raises(UsageError, match="is not a Slurm time"):
        parse_time_min(text)


# --- --mem: Slurm's sizes and their MB ----------------------------------------------------------------------

UNIT_MB = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


@st.composite
def mem_spellings(draw) -> tuple[str, int]:
    """(a spelling sbatch accepts, the MB Slurm makes of it)."""
    unit = draw(st.sampled_from(sorted(UNIT_MB)))
    number = draw(st.integers(1, 10**7 if unit in ("", "K", "M") else 10**4))
    spelled_unit = draw(st.sampled_from([unit, unit.lower()])) + (
        draw(st.sampled_from(["", "B", "b"])) if unit else ""
    )
    digits = str(number).zfill(draw(st.integers(0, 3)))
    # K rounds up to a whole MB, as Slurm does
    mb = -(-number // 1024) if unit == "K" else number * UNIT_MB[unit]
    return digits + spelled_unit, int(mb)


@settings(max_examples=200, deadline=None)
@given(mem_spellings())
def test_every_slurm_memory_spelling_becomes_its_mb(case):
    text, mb = case
    assert parse_mem_mb(text) == mb


MEM_BREAKS = {
    "a fraction": lambda t: t[:1] + ".5" + t[1:],
    "a byte unit": lambda t: t.rstrip("KMGTBkmgtb") + "B",
    "an inner blank": lambda t: t[:1] + " " + (t[1:] or "M"),
    "an unknown unit": lambda t: t.rstrip("KMGTBkmgtb") + "X",
    "a binary unit": lambda t: t.rstrip("KMGTBkmgtb") + "GiB",
    "two units": lambda t: t.rstrip("KMGTBkmgtb") + "GG",
    "a negative size": lambda t: "-" + t,
    "a non-ASCII digit": lambda t: "\u0664" + t,
    "a hexadecimal size": lambda t: "0x" + t,
    "no number": lambda t: t.lstrip("0123456789") or "G",
}


@settings(max_examples=200, deadline=None)
@given(mem_spellings(), st.sampled_from(sorted(MEM_BREAKS)))
def test_every_memory_spelling_slurm_refuses_is_refused(case, how):
    text = MEM_BREAKS[how](case[0])
    with pytest.raises(UsageError, match="is not a memory size"):
        parse_mem_mb(text)
