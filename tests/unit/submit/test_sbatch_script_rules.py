"""A user's own batch script read the way sbatch reads it: which #SBATCH lines count, how each spelling of an option
is taken, what hpcx checks and what it passes on unchanged, and where the script's own log files are found."""

from pathlib import Path

import pytest

from hpcx.errors import UsageError
from hpcx.site import load_site
from hpcx.submit.sbatch_script import expand_log_pattern, parse_directives
from hpcx.submit.submission import Request, resolve

REPO = Path(__file__).resolve().parents[3]
TESTBED = str(REPO / "examples" / "sites" / "testbed.yaml")


def _read(*lines: str):
    return parse_directives("\n".join(lines) + "\n")


def test_only_the_header_counts():
    found = _read(
        "#!/bin/bash",
        "# a comment, then a blank line",
        "",
        "   #SBATCH -p batch",  # indented: still a directive
        "#SBATCH --time=10 # ten minutes",  # a comment after the options
        "echo start",
        "#SBATCH -p never",  # after the first command: sbatch ignores it
    )
    assert found.options == {"partition": "batch", "time": "10"} and found.unchecked == []


def test_a_shebang_is_skipped_only_on_the_first_line():
    assert _read("#!/bin/bash", "#SBATCH -J a").options == {"name": "a"}
    assert _read("#SBATCH -J a", "#!/bin/bash", "#SBATCH -J b").options == {"name": "b"}  # a comment there


def test_a_script_with_no_header_asks_for_nothing():
    found = _read("#!/bin/bash", "srun hostname", "#SBATCH -N 4")
    assert found.options == {} and found.unchecked == [] and found.spelled == {}


@pytest.mark.parametrize(
    "line, options",
    [
        ("#SBATCH --nodes=2", {"nodes": "2"}),
        ("#SBATCH --nodes 2", {"nodes": "2"}),
        ("#SBATCH -N2", {"nodes": "2"}),
        ("#SBATCH -N 2", {"nodes": "2"}),
        ("#SBATCH -c4 --cpus-per-task=6", {"cpus_per_task": "6"}),  # the last one wins, as in sbatch
        ("#SBATCH -t 1-00:00:00 -A proj -q long", {"time": "1-00:00:00", "account": "proj", "qos": "long"}),
        ("#SBATCH --mem=4G --gpus-per-node=1", {"mem": "4G", "gpus_per_node": "1"}),
        ("#SBATCH --job-name='my job'", {"name": "my job"}),
    ],
)
def test_each_spelling_of_an_option_is_read(line, options):
    assert _read("#!/bin/bash", line).options == options


def test_options_hpcx_does_not_check_are_passed_on_as_written():
    found = _read("#!/bin/bash", "#SBATCH --exclusive --mail-type=END --constraint a100 --hold -N -n")
    assert found.unchecked == [
        "--mail-type=END",
        "--hold",
        "-N",
        "-n",
    ]  # -N, -n without a value: Slurm's to refuse
    assert found.options == {"exclusive": "", "constraint": "a100"}


def test_an_unreadable_line_is_refused_naming_it():
    with pytest.raises(UsageError) as err:
        _read("#!/bin/bash", '#SBATCH -J "unclosed')
    assert str(err.value) == "line 2: cannot read '#SBATCH -J \"unclosed': No closing quotation"


@pytest.mark.parametrize(
    "line, options",
    [
        ("#SBATCH -n 1", {"ntasks": "1"}),
        ("#SBATCH -n 5 -N 2", {"ntasks": "5", "nodes": "2"}),  # as written: Slurm spreads the tasks, not hpcx
        ("#SBATCH --ntasks=8 --nodes=2-4", {"ntasks": "8", "nodes": "2-4"}),
        ("#SBATCH -n 8 --ntasks-per-node=2 -N 4", {"ntasks": "8", "ntasks_per_node": "2", "nodes": "4"}),
    ],
)
def test_a_task_count_is_read_as_written(line, options):
    found = _read("#!/bin/bash", line)
    assert found.options == options


@pytest.mark.parametrize("count", ["0", "x", "-2", "²", "1.5"])
def test_a_bad_task_count_is_refused_naming_it_as_the_script_spells_it(tmp_path, count):
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH -p batch\n#SBATCH --ntasks={count}\ntrue\n")
    with pytest.raises(UsageError) as err:
        resolve(Request(kind=None, options={}, command=(), script=script), load_site(TESTBED), None)
    assert str(err.value).startswith(f"--ntasks {count if count in ('0', '-2') else repr(count)} is ")


@pytest.mark.parametrize(
    "nodes, message", [("abc", "-N 'abc' is not a whole number"), ("0", "-N 0 is below 1")]
)
def test_a_bad_node_count_beside_a_task_count_is_refused_naming_it(tmp_path, nodes, message):
    """Not a traceback (ValueError, ZeroDivisionError): the request's check names the bad count."""
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH -p batch -N {nodes} -n 4\ntrue\n")
    with pytest.raises(UsageError, match=message):
        resolve(Request(kind=None, options={}, command=("true",), script=script), load_site(TESTBED), None)


@pytest.mark.parametrize("gres", ["gpu:2", "gpu:tesla:2", "gpu:tesla", "gpu", "shard:2", "license:2"])
def test_a_gres_is_read_as_written(gres):
    found = _read("#!/bin/bash", f"#SBATCH --gres={gres}")
    assert found.options == {"gres": gres} and found.unchecked == []


def test_gpus_per_node_and_gres_are_both_kept():
    found = _read("#!/bin/bash", "#SBATCH --gpus-per-node=1 --gres=gpu:tesla:2")
    assert found.options == {"gpus_per_node": "1", "gres": "gpu:tesla:2"}


def test_a_value_may_hold_an_equals_sign():
    found = _read("#!/bin/bash", "#SBATCH --job-name=a=b --export=ALL,SEED=1")
    assert found.options == {"name": "a=b"} and found.unchecked == ["--export=ALL,SEED=1"]


def test_a_directive_on_the_first_line_counts():
    assert _read("#SBATCH -J first", "#SBATCH -p batch").options == {"name": "first", "partition": "batch"}


def test_a_log_name_with_fields_only_slurm_knows_matches_only_its_own_files():
    """%j of an array task (its own job id) is the same number wherever it appears; a rank (%t) is a number."""
    (name,) = expand_log_pattern("out-%j-%t-%j.txt", {"j": None})
    assert name.fullmatch("out-41-3-41.txt")
    assert not name.fullmatch("out-41-3-42.txt") and not name.fullmatch("out-41-t-41.txt")


def test_a_padded_job_step_name_keeps_the_padding_of_the_known_job_id():
    """%5J is the job id padded to five digits, then the step only Slurm knows (.batch, .0)."""
    (name,) = expand_log_pattern("o-%5J.txt", {"j": "12"})
    assert name.fullmatch("o-00012.txt") and name.fullmatch("o-00012.batch.txt")
    assert not name.fullmatch("o-12.txt") and not name.fullmatch("o-00013.txt")
