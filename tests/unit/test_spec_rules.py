"""The request's parsing rules as a user meets them: each value becomes the right number, and each bad value is
refused with one line that names the value where the user set it (the option, HPCX_*, the user config or the
site file), what is wrong and a right value written the same way."""

import json
import re

import pytest

from hpcx.errors import UsageError
from hpcx.spec import (
    REQUEST_KEYS,
    RESOURCE_FIELDS,
    JobSpec,
    Resources,
    build_resources,
    check_token,
    format_time,
    parse_array,
    parse_count,
    parse_mem_mb,
    parse_time_min,
)

SITE = ("site", "/etc/hpcx/site.yaml")
USER = ("user", "/home/ana/.config/hpcx/config.yaml")


def _error(call, *args, **kw) -> str:
    with pytest.raises(UsageError) as err:
        call(*args, **kw)
    return str(err.value)


# --- where the value was set decides how the error names it ------------------------------------------------

TIME_HINT = "use MM, HH:MM:SS or D-HH:MM:SS, e.g. "


@pytest.mark.parametrize(
    "origin, message",
    [
        (None, f"--time 'abc' is not a Slurm time; {TIME_HINT}--time 01:30:00"),
        (("cli", None), f"--time 'abc' is not a Slurm time; {TIME_HINT}--time 01:30:00"),
        (("script", "job.sh"), f"--time 'abc' is not a Slurm time; {TIME_HINT}--time 01:30:00"),
        (("env", None), f"HPCX_TIME='abc' is not a Slurm time; {TIME_HINT}HPCX_TIME=01:30:00"),
        (
            SITE,
            f"defaults.time 'abc' (from the site file /etc/hpcx/site.yaml) is not a Slurm time; "
            f"{TIME_HINT}defaults.time: 01:30:00",
        ),
        (
            ("site", None),
            f"defaults.time 'abc' (from the site file) is not a Slurm time; "
            f"{TIME_HINT}defaults.time: 01:30:00",
        ),
        (
            USER,
            f"defaults.time 'abc' (from the user config {USER[1]}) is not a Slurm time; "
            f"{TIME_HINT}defaults.time: 01:30:00",
        ),
    ],
)
def test_a_bad_time_is_named_where_it_was_set(origin, message):
    assert _error(parse_time_min, "abc", origin=origin) == message


@pytest.mark.parametrize(
    "origin, message",
    [
        (None, "--mem 'lots' is not a memory size; use e.g. --mem 4000M or 4G"),
        (("env", None), "HPCX_MEM='lots' is not a memory size; use e.g. HPCX_MEM=4000M or 4G"),
        (
            SITE,
            "defaults.mem 'lots' (from the site file /etc/hpcx/site.yaml) is not a memory size; "
            "use e.g. defaults.mem: 4000M or 4G",
        ),
        (
            USER,
            f"defaults.mem 'lots' (from the user config {USER[1]}) is not a memory size; "
            "use e.g. defaults.mem: 4000M or 4G",
        ),
    ],
)
def test_a_bad_memory_size_is_named_where_it_was_set(origin, message):
    assert _error(parse_mem_mb, "lots", origin=origin) == message


@pytest.mark.parametrize(
    "call, value, origin, message",
    [
        (parse_time_min, 0, None, "--time 0 minutes must be positive"),
        (parse_time_min, "0", None, "--time 0 minutes must be positive"),
        (parse_time_min, "0:00:00", ("env", None), "HPCX_TIME=0 minutes must be positive"),
        (
            parse_time_min,
            -5,
            SITE,
            "defaults.time -5 (from the site file /etc/hpcx/site.yaml) minutes must be positive",
        ),
        (parse_mem_mb, 0, None, "--mem 0 MB must be positive"),
        (parse_mem_mb, "0G", ("env", None), "HPCX_MEM='0G' must be positive; e.g. HPCX_MEM=4000M"),
        (parse_mem_mb, -1, USER, f"defaults.mem -1 (from the user config {USER[1]}) MB must be positive"),
    ],
)
def test_nothing_is_not_a_limit(call, value, origin, message):
    assert _error(call, value, origin=origin) == message


@pytest.mark.parametrize(
    "option, text, origin, message",
    [
        ("nodes", "abc", None, "--nodes 'abc' is not a whole number; e.g. --nodes 2"),
        ("nodes", "1.5", ("env", None), "HPCX_NODES='1.5' is not a whole number; e.g. HPCX_NODES=2"),
        (
            "ntasks-per-node",
            "x",
            None,
            "--ntasks-per-node 'x' is not a whole number; e.g. --ntasks-per-node 2",
        ),
        (
            "ntasks-per-node",
            "x",
            ("env", None),
            "HPCX_NTASKS_PER_NODE='x' is not a whole number; e.g. HPCX_NTASKS_PER_NODE=2",
        ),
        (
            "cpus-per-task",
            "",
            SITE,
            "defaults.cpus_per_task '' (from the site file /etc/hpcx/site.yaml) is not a "
            "whole number; e.g. defaults.cpus_per_task: 2",
        ),
        ("nodes", "0", None, "--nodes 0 is below 1; use --nodes 1 or more"),
        ("nodes", -3, ("env", None), "HPCX_NODES=-3 is below 1; use HPCX_NODES=1 or more"),
        (
            "cpus-per-task",
            "0",
            USER,
            f"defaults.cpus_per_task 0 (from the user config {USER[1]}) is below 1; "
            "use defaults.cpus_per_task: 1 or more",
        ),
    ],
)
def test_a_bad_count_is_named_where_it_was_set(option, text, origin, message):
    assert _error(parse_count, option, text, origin=origin) == message


def test_a_gpu_count_may_be_zero_but_not_negative():
    assert parse_count("gpus-per-node", "0", minimum=0) == 0
    assert _error(parse_count, "gpus-per-node", "-1", minimum=0) == (
        "--gpus-per-node -1 is below 0; use --gpus-per-node 0 or more"
    )


NAME_HINT = "use letters, digits and . _ + : @ - only, starting with a letter or digit"


@pytest.mark.parametrize(
    "origin, message",
    [
        (None, f"--account 'my project' is not a plain name; {NAME_HINT}"),
        (("env", None), f"HPCX_ACCOUNT='my project' is not a plain name; {NAME_HINT}"),
        (
            SITE,
            f"defaults.account 'my project' (from the site file /etc/hpcx/site.yaml) is not a plain name; "
            f"{NAME_HINT}",
        ),
    ],
)
def test_a_name_that_cannot_go_on_an_sbatch_line_is_named_where_it_was_set(origin, message):
    assert _error(check_token, "account", "my project", origin=origin) == message


def test_plain_names_and_no_name_pass():
    assert check_token("partition", "gpu-a100.long+x:1@site") == "gpu-a100.long+x:1@site"
    assert check_token("qos", None) is None


# --- the arithmetic of Slurm's time spellings --------------------------------------------------------------


@pytest.mark.parametrize(
    "text, minutes",
    [
        ("10:00", 10),  # MM:SS: ten minutes, not ten times 61 seconds
        ("10:01", 11),  # a started minute counts
        ("2:03:04", 124),  # HH:MM:SS: 2 h 3 min 4 s, rounded up
        ("1-02:03:04", 1 * 1440 + 2 * 60 + 4),  # D-HH:MM:SS: the seconds add a minute, never take one away
        ("1-02:03:00", 1 * 1440 + 2 * 60 + 3),
        ("1-02:03", 1 * 1440 + 2 * 60 + 3),
        ("3-4", 3 * 1440 + 4 * 60),
        ("0-0:0:59", 1),
        ("120", 120),
        (" 45 ", 45),
    ],
)
def test_time_spellings_add_up(text, minutes):
    assert parse_time_min(text) == minutes


@pytest.mark.parametrize(
    "text, mb",
    [(4096, 4096), (1, 1), ("2560K", 3), ("1K", 1), ("3g", 3072), ("2TB", 2 * 1024 * 1024), ("7mb", 7)],
)
def test_memory_sizes_round_up_to_whole_mb(text, mb):
    assert parse_mem_mb(text) == mb


@pytest.mark.parametrize("text", ["1.5G", "4000B", "4000 M", "٤G", "4MiB", "+4G"])
def test_memory_sizes_sbatch_refuses_are_refused(text):
    assert _error(parse_mem_mb, text).startswith(f"--mem {text!r} is not a memory size")


# --- the whole request ----------------------------------------------------------------------------------


def test_each_resource_key_lands_on_its_field():
    res = build_resources(
        {
            "partition": "gpu",
            "nodes": "3",
            "ntasks_per_node": 2,
            "cpus_per_task": "5",
            "gpus_per_node": "2",
            "mem": "1G",
            "time": "2:00:00",
            "account": "proj1",
            "qos": "long",
            "name": "train",
        }
    )
    assert res == Resources(
        partition="gpu",
        nodes=3,
        ntasks_per_node=2,
        cpus_per_task=5,
        gpus_per_node=2,
        mem_mb=1024,
        time_min=120,
        account="proj1",
        qos="long",
        name="train",
    )


def test_resolved_values_are_taken_back_in_their_own_units():
    """A request read back (a manifest's time_min and mem_mb) builds the same resources."""
    res = build_resources({"time_min": 90, "mem_mb": 2048})
    assert (res.time_min, res.mem_mb) == (90, 2048)


def test_unset_values_keep_the_base_and_the_rest_still_apply():
    base = Resources(partition="batch", nodes=2, time_min=30)
    res = build_resources({"partition": None, "time": None, "nodes": "4", "qos": "high"}, base)
    assert res == Resources(partition="batch", nodes=4, time_min=30, qos="high")
    assert build_resources({}, base) == base


def test_an_unknown_resource_is_refused_listing_the_known_ones():
    assert _error(build_resources, {"walltime": "1:00:00"}) == (
        f"unknown resource 'walltime'; known: {', '.join(REQUEST_KEYS)}"
    )


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("time", "abc", "HPCX_TIME='abc' is not a Slurm time"),
        ("time_min", 0, "HPCX_TIME=0 minutes must be positive"),
        ("mem", "lots", "HPCX_MEM='lots' is not a memory size"),
        ("mem_mb", "x", "HPCX_MEM='x' is not a memory size"),
        ("nodes", "abc", "HPCX_NODES='abc' is not a whole number"),
        ("ntasks_per_node", "0", "HPCX_NTASKS_PER_NODE=0 is below 1"),
        ("cpus_per_task", "two", "HPCX_CPUS_PER_TASK='two' is not a whole number"),
        ("gpus_per_node", "-1", "HPCX_GPUS_PER_NODE=-1 is below 0"),
        ("partition", "a b", "HPCX_PARTITION='a b' is not a plain name"),
        ("account", "a;b", "HPCX_ACCOUNT='a;b' is not a plain name"),
        ("qos", "$(id)", "HPCX_QOS='$(id)' is not a plain name"),
        ("name", "x y", "HPCX_NAME='x y' is not a plain name"),
    ],
)
def test_the_request_names_each_bad_value_where_it_was_set(key, value, message):
    got = _error(build_resources, {key: value}, origins={key: ("env", None)})
    assert got.startswith(message + ";") or got == message


def test_a_count_error_names_the_flag_the_user_typed():
    assert _error(build_resources, {"nodes": "abc"}) == "--nodes 'abc' is not a whole number; e.g. --nodes 2"
    assert _error(build_resources, {"cpus_per_task": "x"}).startswith(
        "--cpus-per-task 'x' is not a whole number"
    )
    assert _error(build_resources, {"gpus_per_node": "x"}).startswith(
        "--gpus-per-node 'x' is not a whole number"
    )


# --- job arrays --------------------------------------------------------------------------------------------


def test_an_array_keeps_its_text_as_written_without_blanks():
    spec = parse_array(" 0-6:3%2 \n")
    assert (spec.text, spec.indices, spec.throttle) == ("0-6:3%2", (0, 3, 6), 2)


@pytest.mark.parametrize(
    "text, message",
    [
        ("0-x", "--array '0-x': '0-x' is not N, N-M or N-M:STEP; e.g. --array 0-99%10"),
        ("1,5-2", "--array '1,5-2': '5-2' is an empty range; write the smaller index first"),
        ("0-4:0", "--array '0-4:0': '0-4:0' is an empty range; write the smaller index first"),
        ("0-4%x", "--array '0-4%x': %x is not a whole number of tasks"),
    ],
)
def test_a_bad_array_names_the_bad_part(text, message):
    assert _error(parse_array, text) == message


# --- the request as data -----------------------------------------------------------------------------------


def test_a_job_spec_is_plain_json_data():
    spec = JobSpec("mpi", Resources(nodes=2, mem_mb=100), ("python", "x.py"), {"lr": "0.1"})
    doc = json.loads(json.dumps(spec.to_dict()))
    assert doc == {
        "kind": "mpi",
        "resources": {
            "partition": None,
            "nodes": 2,
            "ntasks_per_node": 1,
            "cpus_per_task": 1,
            "gpus_per_node": 0,
            "mem_mb": 100,
            "time_min": 10,
            "account": None,
            "qos": None,
            "name": "hpcx",
            **dict.fromkeys(RESOURCE_FIELDS[10:]),  # sbatch's other forms: none asked
        },
        "command": ["python", "x.py"],
        "variables": {"lr": "0.1"},
    }
    assert (
        JobSpec(doc["kind"], Resources(**doc["resources"]), tuple(doc["command"]), doc["variables"]) == spec
    )


def test_a_jobs_totals_multiply_its_per_node_counts():
    res = Resources(nodes=3, ntasks_per_node=2, cpus_per_task=5)
    assert (res.tasks, res.cpus_per_node) == (6, 10)
    assert Resources(nodes=3, ntasks_per_node=2, ntasks=5).tasks == 5  # -n as asked, whatever the shape


@pytest.mark.parametrize(
    "minutes, text",
    [
        (1, "00:01:00"),
        (59, "00:59:00"),
        (61, "01:01:00"),
        (1439, "23:59:00"),
        (1440, "1-00:00:00"),
        (1441, "1-00:01:00"),
        (2 * 1440 + 10 * 60 + 5, "2-10:05:00"),
        (100 * 1440, "100-00:00:00"),
    ],
)
def test_limits_are_written_the_way_slurm_writes_them(minutes, text):
    assert format_time(minutes) == text


@pytest.mark.parametrize("typed", ["1_0", "+2", "３", "2.0"])
def test_a_count_sbatch_would_refuse_is_refused_before_it(typed):
    # int() takes all of these; sbatch refuses them, and an own script's values reach sbatch as written.
    from hpcx.spec import parse_count

    with pytest.raises(UsageError, match=re.escape(f"--nodes '{typed}' is not a whole number")):
        parse_count("nodes", typed)
