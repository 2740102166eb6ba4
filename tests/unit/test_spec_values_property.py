"""Slurm's value syntax as hpcx reads it (issue 29), checked as properties over generated values: times, memory
sizes, host lists, gres lists, node ranges and typed GPU counts parse to what sbatch means by them, and what hpcx
writes back parses to the same value. A few fixed refusals at the end: each names the value the user gave."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpcx.errors import UsageError
from hpcx.spec import (
    Gres,
    compress_hostlist,
    expand_hostlist,
    format_time,
    parse_gres,
    parse_mem_mb,
    parse_mem_or_all,
    parse_node_range,
    parse_time_min,
    parse_typed_count,
)

FAST = settings(max_examples=200, deadline=None)

# --- times -----------------------------------------------------------------------------------------------------

DAYS = st.integers(0, 400)
HOURS = st.integers(0, 23)
MINUTES = st.integers(0, 59)
SECONDS = st.integers(0, 59)


def _minutes(seconds: int) -> int:
    return math.ceil(seconds / 60)


@FAST
@given(st.integers(1, 400 * 1440))
def test_format_time_parses_back_to_the_same_minutes(minutes):
    assert parse_time_min(format_time(minutes)) == minutes


@FAST
@given(DAYS, HOURS, MINUTES, SECONDS)
def test_days_hours_minutes_seconds_are_the_minutes_rounded_up(d, h, m, s):
    seconds = d * 86400 + h * 3600 + m * 60 + s
    if seconds == 0:
        with pytest.raises(UsageError):
            parse_time_min(f"{d}-{h:02d}:{m:02d}:{s:02d}")
        return
    assert parse_time_min(f"{d}-{h:02d}:{m:02d}:{s:02d}") == _minutes(seconds)


@FAST
@given(st.integers(1, 400), HOURS, MINUTES)
def test_shorter_day_forms_count_whole_hours_and_minutes(d, h, m):
    assert parse_time_min(f"{d}-{h}") == d * 1440 + h * 60
    assert parse_time_min(f"{d}-{h:02d}:{m:02d}") == d * 1440 + h * 60 + m


@FAST
@given(st.integers(0, 99), MINUTES, SECONDS)
def test_forms_without_days_are_minutes_and_seconds_or_hours(h, m, s):
    if h * 3600 + m * 60 + s:
        assert parse_time_min(f"{h:02d}:{m:02d}:{s:02d}") == _minutes(h * 3600 + m * 60 + s)
    if m * 60 + s:
        assert parse_time_min(f"{m}:{s:02d}") == _minutes(m * 60 + s)
    if m:
        assert parse_time_min(str(m)) == m


# --- memory ----------------------------------------------------------------------------------------------------

MB_PER_UNIT = {"K": None, "M": 1, "G": 1024, "T": 1024 * 1024, "": 1}
UNITS = st.sampled_from(["K", "M", "G", "T", "k", "m", "g", "t"])
SUFFIX = st.sampled_from(["", "B"])


def _mb(count: int, unit: str) -> int:
    factor = MB_PER_UNIT[unit.upper()]
    return -(-count // 1024) if factor is None else count * factor


@FAST
@given(st.integers(1, 2**40), UNITS, SUFFIX)
def test_a_size_with_a_unit_is_whole_mb_rounded_up(count, unit, b):
    assert parse_mem_mb(f"{count}{unit}{b}") == _mb(count, unit)


@FAST
@given(st.integers(1, 2**40))
def test_a_size_without_a_unit_is_mb(count):
    assert parse_mem_mb(str(count)) == count
    assert parse_mem_mb(count) == count


@FAST
@given(st.integers(1, 2**30), st.sampled_from(["", "K", "M", "G", "T"]))
def test_mem_or_all_reads_sizes_as_parse_mem_mb_does(count, unit):
    assert parse_mem_or_all(f"{count}{unit}") == parse_mem_mb(f"{count}{unit}")


@pytest.mark.parametrize("zero", ["0", "0K", "0M", "0G", "0T"])
def test_zero_is_all_of_the_nodes_memory_only_for_mem(zero):
    assert parse_mem_or_all(zero) == 0
    with pytest.raises(UsageError) as err:
        parse_mem_mb(zero, option="mem_per_cpu")
    assert "--mem-per-cpu" in str(err.value)


@FAST
@given(UNITS, SUFFIX)
def test_zero_in_any_spelling_parse_mem_mb_takes_is_all_memory(unit, b):
    # parse_mem_mb takes 4g and 4GB; sbatch reads --mem=0g and --mem=0GB as --mem=0 too.
    assert parse_mem_or_all(f"0{unit}{b}") == 0


# --- host lists ------------------------------------------------------------------------------------------------

PREFIX = st.sampled_from(["n", "gpu", "x", "node-", "c1-", "r2n"])


@st.composite
def hostnames(draw):
    """Distinct names like n1, gpu07, x012: a prefix, a number, and sometimes zero padding."""
    size = draw(st.integers(1, 12))
    names = []
    for _ in range(size):
        prefix = draw(PREFIX)
        number = draw(st.integers(0, 120))
        width = draw(st.sampled_from([0, 0, 2, 3]))
        names.append(f"{prefix}{str(number).zfill(width)}")
    plain = draw(st.lists(st.sampled_from(["login", "head", "gpu-a"]), max_size=2))
    return list(dict.fromkeys([*names, *plain]))


@FAST
@given(hostnames())
def test_compress_hostlist_expands_back_to_the_same_names(names):
    assert sorted(expand_hostlist(compress_hostlist(names))) == sorted(names)


@FAST
@given(hostnames())
def test_compress_hostlist_keeps_the_order_given(names):
    assert list(expand_hostlist(compress_hostlist(names))) == names


@FAST
@given(PREFIX, st.integers(0, 500), st.integers(0, 40), st.sampled_from([0, 2, 3, 4]))
def test_a_bracket_range_names_each_number_once(prefix, low, span, width):
    high = low + span
    text = f"{prefix}[{str(low).zfill(width)}-{str(high).zfill(width)}]"
    names = expand_hostlist(text)
    assert len(names) == span + 1
    assert names[0].startswith(prefix) and names[-1].endswith(str(high))
    if width and str(low).zfill(width).startswith("0"):
        assert all(len(n) - len(prefix) >= width for n in names)


@FAST
@given(st.lists(st.integers(0, 300), min_size=1, max_size=20, unique=True))
def test_sorted_numbers_compress_to_ranges_that_expand_back(numbers):
    names = [f"n{i}" for i in sorted(numbers)]
    text = compress_hostlist(names)
    assert list(expand_hostlist(text)) == names
    assert text.count("n") == 1  # one prefix, one bracket


# --- gres ------------------------------------------------------------------------------------------------------

GRES_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,8}", fullmatch=True)
GRES_TYPE = st.from_regex(r"[A-Za-z0-9_.-]{0,4}[A-Za-z_.-][A-Za-z0-9_.-]{0,4}", fullmatch=True)
GRES = st.builds(Gres, GRES_NAME, st.none() | GRES_TYPE, st.integers(1, 64))


@FAST
@given(GRES)
def test_one_gres_entry_parses_back_to_itself(entry):
    assert parse_gres(str(entry)) == (entry,)


@FAST
@given(st.lists(GRES, min_size=1, max_size=4))
def test_a_gres_list_parses_back_to_its_entries(entries):
    assert parse_gres(",".join(str(e) for e in entries)) == tuple(entries)


@FAST
@given(GRES_NAME, st.none() | GRES_TYPE)
def test_a_gres_entry_without_a_count_is_one(name, kind):
    text = f"{name}:{kind}" if kind else name
    assert parse_gres(text) == (Gres(name, kind, 1),)


def test_gres_none_is_no_entry():
    assert parse_gres("none") == () and parse_gres("") == ()


# --- node ranges and typed counts ------------------------------------------------------------------------------


@FAST
@given(st.integers(1, 10_000))
def test_a_node_count_is_itself_without_a_max(n):
    assert parse_node_range(str(n)) == (n, None)
    assert parse_node_range(n) == (n, None)


@FAST
@given(st.integers(1, 10_000), st.integers(0, 10_000))
def test_a_node_range_round_trips(low, span):
    assert parse_node_range(f"{low}-{low + span}") == (low, low + span)


@FAST
@given(st.integers(1, 10_000), st.integers(1, 10_000))
def test_a_node_range_with_max_below_min_is_refused(high, extra):
    text = f"{high + extra}-{high}"
    with pytest.raises(UsageError) as err:
        parse_node_range(text)
    assert text in str(err.value)


TYPE = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,10}", fullmatch=True)


@FAST
@given(st.sampled_from(["gpus", "gpus_per_node", "gpus_per_task"]), st.none() | TYPE, st.integers(0, 512))
def test_typed_counts_are_type_and_count(option, kind, count):
    text = f"{kind}:{count}" if kind else str(count)
    assert parse_typed_count(option, text) == (kind, count)


# --- refusals name the value -----------------------------------------------------------------------------------


def _mem_per_cpu(text):
    return parse_mem_mb(text, option="mem_per_cpu")


def _gpus(text):
    return parse_typed_count("gpus", text)


REFUSALS = [
    ("time", parse_time_min, "1h"),
    ("time", parse_time_min, "1-2-3"),
    ("mem", parse_mem_mb, "4X"),
    ("mem-per-cpu", _mem_per_cpu, "lots"),
    ("mem-per-cpu", _mem_per_cpu, "0G"),
    ("mem", parse_mem_or_all, "-1G"),
    ("gres", parse_gres, "gpu:tesla:0"),
    ("gres", parse_gres, "gpu::2,nvme"),
    ("nodes", parse_node_range, "4-2"),
    ("nodes", parse_node_range, "2-x"),
    ("nodes", parse_node_range, "0-2"),
    ("gpus", _gpus, "tesla:two"),
    ("gpus", _gpus, "a:b:2"),
    ("nodelist", expand_hostlist, "n[4-2]"),
    ("nodelist", expand_hostlist, "n[1-x]"),
]


@pytest.mark.parametrize(
    "parse, text", [pytest.param(parse, text, id=f"{what} {text}") for what, parse, text in REFUSALS]
)
def test_a_refusal_names_the_value(parse, text):
    with pytest.raises(UsageError) as err:
        parse(text)
    assert text in str(err.value)
