import pytest

from hpcx.errors import UsageError
from hpcx.spec import Resources, build_resources, check_token, format_time, parse_mem_mb, parse_time_min


@pytest.mark.parametrize(
    "text, minutes",
    [
        ("30", 30),
        ("90", 90),
        ("5:30", 6),
        ("01:00:00", 60),
        ("48:00:00", 2880),
        ("1-00", 1440),
        ("1-12:30", 2190),
        ("2-00:00:00", 2880),
        ("0:00:01", 1),
        (45, 45),
    ],
)
def test_slurm_time_spellings_become_minutes(text, minutes):
    assert parse_time_min(text) == minutes


@pytest.mark.parametrize("bad", ["", "abc", "1:2:3:4", "-5", "1--2", "01:00:00 ", "1h", "0"])
def test_bad_times_name_the_value_and_the_format(bad):
    if bad == "01:00:00 ":  # surrounding blanks are forgiven
        assert parse_time_min(bad) == 60
        return
    with pytest.raises(UsageError) as err:
        parse_time_min(bad)
    assert "time" in str(err.value)


def test_format_time_round_trips_through_parse():
    for minutes in (1, 59, 60, 61, 1439, 1440, 2890, 10080):
        assert parse_time_min(format_time(minutes)) == minutes


@pytest.mark.parametrize(
    "text, mb",
    [
        ("4000", 4000),
        ("4000M", 4000),
        ("4G", 4096),
        ("4GB", 4096),
        ("2048K", 2),
        ("1T", 1048576),
        ("512mb", 512),
    ],
)
def test_memory_spellings_become_mb(text, mb):
    assert parse_mem_mb(text) == mb


@pytest.mark.parametrize("bad", ["lots", "4X", "-1G", "0", "1.5G"])  # sbatch refuses 1.5G too
def test_bad_memory_is_rejected(bad):
    with pytest.raises(UsageError, match="mem"):
        parse_mem_mb(bad)


def test_build_resources_parses_each_field():
    res = build_resources(
        {
            "nodes": "2",
            "ntasks_per_node": "4",
            "time": "1:00:00",
            "mem": "2G",
            "partition": "batch",
            "gpus_per_node": "0",
        }
    )
    assert res == Resources(partition="batch", nodes=2, ntasks_per_node=4, time_min=60, mem_mb=2048)
    assert res.tasks == 8 and res.ntasks is None and res.cpus_per_node == 4  # -n was not given


@pytest.mark.parametrize("value", ["a b", "x;rm", "$(id)", "a\nb", "'q'", "", "-lead"])
def test_names_that_go_on_sbatch_lines_must_be_plain(value):
    with pytest.raises(UsageError, match="plain name"):
        check_token("account", value)


def test_counts_below_one_are_rejected():
    with pytest.raises(UsageError, match="--nodes 0 is below 1"):
        build_resources({"nodes": "0"})
