"""The login side stays light: `hpcx --help` on a slow login node must not load the compute stack."""

import subprocess
import sys

HEAVY = ("torch", "mpi4py", "h5py", "numpy", "matplotlib", "psutil", "scipy", "jsonschema", "tensorboard")


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return set(out.stdout.split())


def test_importing_the_cli_loads_no_heavy_package():
    loaded = _loaded_after("import hpcx.cli")
    assert not loaded & set(HEAVY), f"hpcx.cli loaded {sorted(loaded & set(HEAVY))}"
    assert not {m for m in loaded if m.startswith(("hpcx.runtime", "hpcx.profiling"))}


def test_importing_the_runtime_package_loads_nothing_heavy_until_init():
    loaded = _loaded_after("import hpcx.runtime, hpcx.runtime.hdf5")
    assert not loaded & {"torch", "mpi4py", "h5py"}


def test_compute_side_never_imports_the_cli():
    loaded = _loaded_after("import hpcx.run, hpcx.runtime, hpcx.profiling.sampler")
    assert not {m for m in loaded if m.startswith("hpcx.cli")} and "click" not in loaded
