"""Which framework a rank ran, read from the modules its Python had loaded (nothing imported to find out), and
the record the exit hook writes into the run's profile directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types

from hpcx.profiling.frameworks import found


def _mod(version=None):
    m = types.ModuleType("m")
    if version is not None:
        m.__version__ = version
    return m


def test_the_most_specific_first_each_name_once_with_the_packages_version():
    modules = {
        "torch": _mod("2.13.0"),
        "torch.distributed": _mod(),
        "lightning": _mod("2.5.1"),
        "lightning.pytorch": _mod(),
        "pytorch_lightning": _mod("2.5.1"),
        "accelerate": _mod("1.2.0"),
    }
    assert found(modules) == [
        {"name": "PyTorch Lightning", "module": "lightning.pytorch", "version": "2.5.1"},
        {"name": "Hugging Face accelerate", "module": "accelerate", "version": "1.2.0"},
        {"name": "torch.distributed", "module": "torch.distributed", "version": "2.13.0"},
        {"name": "torch", "module": "torch", "version": "2.13.0"},
    ]


def test_the_trainer_is_named_only_when_its_module_was_loaded():
    base = {"transformers": _mod("5.25.0"), "torch": _mod("2.13.0")}
    assert [f["name"] for f in found(base)] == ["torch"]
    with_trainer = found({**base, "transformers.trainer": _mod()})
    assert with_trainer[0] == {
        "name": "Hugging Face Trainer",
        "module": "transformers.trainer",
        "version": "5.25.0",
    }


def test_no_framework_and_a_missing_version():
    assert found({"numpy": _mod("2.0")}) == []
    assert found({"deepspeed": _mod()}) == [{"name": "DeepSpeed", "module": "deepspeed", "version": None}]


HOOKED = textwrap.dedent("""
    import sys, types
    sys.modules["lightning"] = types.SimpleNamespace(__version__="9.9")
    sys.modules["lightning.pytorch"] = types.ModuleType("lightning.pytorch")
""")


def test_the_exit_hook_records_the_rank_and_its_frameworks(tmp_path):
    from hpcx.runtime.torchenv import EXIT_SITE

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_", "PMI", "HPCX_"))}
    env.update(HPCX_PROFILE_DIR=str(tmp_path), RANK="5", WORLD_SIZE="8", TORCHELASTIC_RUN_ID="x")
    env["PYTHONPATH"] = os.pathsep.join([str(EXIT_SITE), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", HOOKED], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (path,) = tmp_path.glob("framework-rank-00005-p*.jsonl")
    record = json.loads(path.read_text())
    assert record["type"] == "framework" and record["rank"] == 5
    assert record["frameworks"][0] == {
        "name": "PyTorch Lightning",
        "module": "lightning.pytorch",
        "version": "9.9",
    }


def test_torchruns_agent_and_a_run_without_a_profile_directory_write_nothing(tmp_path):
    from hpcx.runtime.torchenv import EXIT_SITE

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_", "PMI", "HPCX_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(EXIT_SITE), env.get("PYTHONPATH", "")])
    subprocess.run(
        [sys.executable, "-c", HOOKED], env=env, capture_output=True, timeout=60, check=True, cwd=tmp_path
    )
    assert list(tmp_path.rglob("framework-*")) == []  # no HPCX_PROFILE_DIR: not a profiled run
    env["HPCX_PROFILE_DIR"] = str(tmp_path / "p")
    agent = tmp_path / "agent.py"
    agent.write_text(
        HOOKED + "sys.argv[0] = '/usr/bin/torchrun'\n"
    )  # the agent, as the torchrun script starts it
    subprocess.run([sys.executable, str(agent)], env=env, capture_output=True, timeout=60, check=True)
    assert list(tmp_path.rglob("framework-*")) == []


def test_record_at_exit_in_process(tmp_path, monkeypatch):
    from hpcx.profiling import frameworks

    for key in [k for k in os.environ if k.startswith(("SLURM_", "OMPI_", "PMI", "HPCX_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "r")
    monkeypatch.setitem(sys.modules, "accelerate", _mod("1.0"))
    monkeypatch.setattr(sys, "argv", ["train.py"])
    frameworks.record_at_exit()  # no HPCX_PROFILE_DIR: nothing, nowhere
    assert list(tmp_path.rglob("*")) == []
    monkeypatch.setenv("HPCX_PROFILE_DIR", str(tmp_path))
    frameworks.record_at_exit()
    (path,) = tmp_path.glob(f"framework-rank-00002-p{os.getpid()}.jsonl")
    record = json.loads(path.read_text())
    assert record["v"] == 2 and record["rank"] == 2 and record["t"] > 0
    assert {"name": "Hugging Face accelerate", "module": "accelerate", "version": "1.0"} in record[
        "frameworks"
    ]
    path.unlink()
    for agent_argv0 in ("/usr/local/bin/torchrun", "torchrun"):
        monkeypatch.setattr(sys, "argv", [agent_argv0, "--nnodes=2"])
        frameworks.record_at_exit()
    monkeypatch.setattr(sys, "argv", ["/x/run.py"])
    main = types.ModuleType("__main__")
    main.__spec__ = types.SimpleNamespace(name="torch.distributed.run")
    monkeypatch.setitem(sys.modules, "__main__", main)
    frameworks.record_at_exit()
    assert list(tmp_path.glob("framework-*")) == []  # torchrun's agent is not a rank
    main.__spec__ = types.SimpleNamespace(name="train")
    frameworks.record_at_exit()
    assert len(list(tmp_path.glob("framework-*"))) == 1


def test_a_program_without_any_framework_writes_nothing(tmp_path):
    from hpcx.runtime.torchenv import EXIT_SITE

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_", "PMI", "HPCX_"))}
    env.update(
        HPCX_PROFILE_DIR=str(tmp_path),
        PYTHONPATH=os.pathsep.join([str(EXIT_SITE), env.get("PYTHONPATH", "")]),
    )
    subprocess.run(
        [sys.executable, "-c", "import json"], env=env, capture_output=True, timeout=60, check=True
    )
    assert list(tmp_path.iterdir()) == []


def test_no_gpu_memory_without_cuda():
    from hpcx.profiling.frameworks import gpu_memory

    assert gpu_memory({}) is None and gpu_memory({"json": json}) is None
    import torch  # real torch, CPU only here: CUDA never initialised

    assert gpu_memory({"torch": torch}) is None


def test_the_exit_hook_runs_the_sitecustomize_it_hides(tmp_path):
    from hpcx.runtime.torchenv import EXIT_SITE

    theirs = tmp_path / "site"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("import builtins\nbuiltins.THEIRS = 'ran'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_", "PMI", "HPCX_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(EXIT_SITE), str(theirs)])
    out = subprocess.run(
        [sys.executable, "-c", "import builtins; print(builtins.THEIRS)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "ran", out.stderr
