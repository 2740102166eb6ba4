"""Resolving a request: precedence of the layers, the automatic partition, own scripts, named resources, locks."""

from pathlib import Path

import pytest

from hpcx.errors import RejectedError, TemplateError, UsageError
from hpcx.site import load_site
from hpcx.site.config import UserConfig
from hpcx.spec import parse_array
from hpcx.submit.sbatch_script import parse_directives
from hpcx.submit.submission import Request, render_script, resolve

REPO = Path(__file__).resolve().parents[3]
TESTBED = str(REPO / "examples" / "sites" / "testbed.yaml")


def _resolve(options=None, user=None, **kw):
    req = Request(kind=kw.pop("kind", "serial"), options=options or {}, command=("true",), **kw)
    return resolve(req, load_site(TESTBED), user)


def test_precedence_cli_over_env_over_user_over_site(monkeypatch):
    user = UserConfig(None, defaults={"time": "20", "account": "useracct", "nodes": 2})
    monkeypatch.setenv("HPCX_TIME", "15")
    prep = _resolve({"time": "25"}, user)
    assert (prep.spec.resources.time_min, prep.sources["time_min"]) == (25, "cli")
    prep = _resolve({}, user)
    assert (prep.spec.resources.time_min, prep.sources["time_min"]) == (15, "env")
    assert (prep.spec.resources.account, prep.sources["account"]) == ("useracct", "user")
    assert (prep.spec.resources.nodes, prep.sources["nodes"]) == (2, "user")
    monkeypatch.delenv("HPCX_TIME")
    assert _resolve({}, user).sources["time_min"] == "user"
    assert _resolve({}).sources["time_min"] == "partition"  # debug's default_time
    assert _resolve({}).sources["cpus_per_task"] == "default"


def test_partition_is_chosen_with_least_waste_and_explained():
    short = _resolve({"time": "20"})
    assert short.partition.name == "debug" and short.sources["partition"] == "auto"
    long = _resolve({"time": "2:00:00"})
    assert long.partition.name == "batch"
    assert "debug" in long.choice["rejected"] and "MaxTime" in long.choice["rejected"]["debug"][0]
    assert _resolve({"time": "2:00:00", "gpus_per_node": "2"}).partition.name == "gpu"


def test_no_partition_fits_names_each_reason():
    with pytest.raises(RejectedError, match="no partition of hpcxtest fits"):
        _resolve({"nodes": "2", "gpus_per_node": "1"})


def test_mixed_partition_takes_a_one_node_gpu_job_but_not_two():
    assert _resolve({"partition": "batch", "gpus_per_node": "1"}).partition.name == "batch"
    with pytest.raises(RejectedError, match="only 1 of partition batch's nodes have that"):
        _resolve({"partition": "batch", "gpus_per_node": "1", "nodes": "2"})


def test_own_script_directives_are_read_and_checked(tmp_path):
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n#SBATCH -p debug\n#SBATCH --time=01:00:00 -N1\n#SBATCH --exclusive\necho hi\n"
        "#SBATCH --time=99:00:00\n"
    )
    with pytest.raises(RejectedError, match="--time 01:00:00 exceeds partition debug's MaxTime"):
        _resolve({}, script=script, kind=None)
    prep = _resolve({"time": "20"}, script=script, kind=None)  # the command line overrides the script
    assert prep.spec.resources.time_min == 20 and prep.sources["partition"] == "script"
    assert prep.unchecked == [] and prep.spec.resources.exclusive == ""  # --exclusive: checked, reaches Slurm


@pytest.mark.parametrize(
    "text, options, unchecked",
    [
        ("#!/bin/bash\n#SBATCH -n 8 -N 2\n", {"ntasks": "8", "nodes": "2"}, []),
        ("#!/bin/bash\n#SBATCH --gres=gpu:a100:2 --mem 4G\n", {"gres": "gpu:a100:2", "mem": "4G"}, []),
        (
            "#!/bin/bash\n# a comment\n\n#SBATCH -J name -A acct\nsrun x\n#SBATCH -p never\n",
            {"name": "name", "account": "acct"},
            [],
        ),
        ("#!/bin/bash\n#SBATCH --gres=license:2 --array=1-3\n", {"gres": "license:2"}, ["--array=1-3"]),
    ],
)
def test_directive_parser(text, options, unchecked):
    found = parse_directives(text)
    assert found.options == options and sorted(found.unchecked) == unchecked


def test_array_syntax():
    a = parse_array("0-9:2,15%3")
    assert a.indices == (0, 2, 4, 6, 8, 15) and a.throttle == 3
    for bad in ("5-1", "x", "1-3:0", "1%x"):
        with pytest.raises(UsageError, match="--array"):
            parse_array(bad)


def test_array_beyond_max_array_size_is_rejected():
    with pytest.raises(
        RejectedError, match="reaches index 1001, but MaxArraySize on partition debug is 1001"
    ):
        _resolve({}, kind="array", array="0-1001")


def _site_with(tmp_path, extra: str) -> str:
    text = Path(TESTBED).read_text() + extra
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return str(path)


def test_named_resources_become_directives(tmp_path):
    site = load_site(
        _site_with(tmp_path, "resources:\n  constraint:\n    flag: --constraint\n    choices: [a100, v100]\n")
    )
    prep = resolve(Request("serial", named={"constraint": "a100"}, command=("true",)), site)
    text = render_script(prep, run_id="r", run_dir=tmp_path, workdir=tmp_path).text
    assert "#SBATCH --constraint=a100\n" in text
    with pytest.raises(RejectedError, match="not offered"):
        resolve(Request("serial", named={"constraint": "h100"}, command=("true",)), site)
    with pytest.raises(UsageError, match="not a resource of site"):
        resolve(Request("serial", named={"licence": "x"}, command=("true",)), site)


def test_locked_blocks_cannot_be_overridden_by_user_templates(tmp_path):
    site = load_site(_site_with(tmp_path, "locked_blocks: [header, environment]\n"))
    user_dir = tmp_path / "mine"
    user_dir.mkdir()
    (user_dir / "sneaky.sbatch.j2").write_text(
        '{% extends "base.sbatch.j2" %}{% block header %}#SBATCH -p x\n{% endblock %}'
    )
    (user_dir / "fine.sbatch.j2").write_text(
        '{% extends "base.sbatch.j2" %}{% block launch %}echo ok\n{% endblock %}'
    )
    (user_dir / "bare.sbatch.j2").write_text("#!/bin/bash\necho no base\n")
    user = UserConfig(None, template_dirs=(user_dir,))
    for kind, words in (("sneaky", "overrides block(s) header"), ("bare", "must {% extends %}")):
        prep = resolve(Request(kind, command=("true",)), site, user)
        with pytest.raises(
            TemplateError, match=words.replace("{", r"\{").replace("(", r"\(").replace(")", r"\)")
        ):
            render_script(prep, run_id="r", run_dir=tmp_path, workdir=tmp_path)
    prep = resolve(Request("fine", command=("true",)), site, user)
    assert "echo ok" in render_script(prep, run_id="r", run_dir=tmp_path, workdir=tmp_path).text
