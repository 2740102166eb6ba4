"""The record format's promise, for every input: records written, a torn tail appended (a rank killed
mid-line), another attempt's records written: the reader returns exactly the complete records, in order.
Also when an older writer glued the next attempt's first record onto the torn part."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from hpcx.rundir.records import FORMAT_VERSION, RecordWriter, read_records

# Field names and values as a rank's records have them: numbers, strings (any text: json escapes quotes),
# lists and nested per-source dicts (``rapl``, ``nvml``...: none of them starts with a ``v`` key).
_names = st.text("abcdefghijklmnopqrstuvwxyz_.", min_size=1, max_size=12).filter(
    lambda k: k not in ("v", "type")
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_values = st.one_of(_scalars, st.lists(_scalars, max_size=3), st.dictionaries(_names, _scalars, max_size=3))
_records = st.builds(
    lambda kind, t, fields: {"type": kind, "t": t, **fields},
    st.sampled_from(["start", "source", "sample", "end", "io"]),
    st.floats(0, 2e9, allow_nan=False),
    st.dictionaries(_names.filter(lambda k: k != "t"), _values, max_size=5),
)
_attempt = st.lists(_records, max_size=6)


def _line(record: dict) -> str:
    return json.dumps({"v": FORMAT_VERSION, **record}, separators=(",", ":"))


@st.composite
def _torn(draw: st.DrawFn) -> str:
    """The part of a record line that reached the disk before the kill: at least one byte, never all of it."""
    line = _line(draw(_records))
    return line[: draw(st.integers(1, len(line) - 1))]


def _write(path: Path, records: list[dict], *, line_flush: bool) -> None:
    writer = RecordWriter(path, line_flush=line_flush)
    for record in records:
        writer.write(record)
    writer.close()


def _expected(*attempts: list[dict]) -> list[dict]:
    return [{"v": FORMAT_VERSION, **r} for records in attempts for r in records]


@settings(max_examples=80, deadline=None)
@given(first=_attempt, torn=_torn(), second=_attempt, line_flush=st.booleans())
def test_the_reader_returns_exactly_the_complete_records_around_a_torn_tail(first, torn, second, line_flush):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rank-00000.jsonl"
        _write(path, first, line_flush=line_flush)
        with open(path, "a", encoding="utf-8") as fh:  # killed mid-line
            fh.write(torn)
        _write(path, second, line_flush=line_flush)  # the requeued attempt appends to the same file
        assert list(read_records(path)) == _expected(first, second)


@settings(max_examples=30, deadline=None)
@given(attempts=st.lists(st.tuples(_attempt, _torn()), min_size=1, max_size=4), last=_attempt)
def test_every_attempt_killed_mid_line_loses_only_its_torn_line(attempts, last):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rank-00000.jsonl"
        for records, torn in attempts:
            _write(path, records, line_flush=True)
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(torn)
        _write(path, last, line_flush=True)
        assert list(read_records(path)) == _expected(*(records for records, _ in attempts), last)


@settings(max_examples=50, deadline=None)
@given(first=_attempt, torn=_torn(), second=st.lists(_records, min_size=1, max_size=6))
def test_a_record_an_older_writer_glued_onto_the_torn_part_is_still_read(first, torn, second):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rank-00000.jsonl"
        _write(path, first, line_flush=True)
        # Before writers looked at the tail, the next attempt's first line went straight after the torn part.
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(torn + "".join(_line(r) + "\n" for r in second))
        assert list(read_records(path)) == _expected(first, second)
