"""Seeds: one root seed -> per-rank and per-worker seeds, deterministic mode, RNG capture/restore, the record."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from hpcx.errors import UsageError  # noqa: E402
from hpcx.runtime import seeds  # noqa: E402


@pytest.fixture(autouse=True)
def private_env(monkeypatch):
    """seed_everything() writes HPCX_RANK_SEED and CUBLAS_WORKSPACE_CONFIG: keep them out of other tests."""
    monkeypatch.setattr(
        os, "environ", {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    )
    monkeypatch.setattr(seeds, "_rank_seed", None)
    yield
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = False


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(4).tolist()


def test_the_same_root_and_rank_give_the_same_draws_everywhere():
    seeds.seed_everything(42, 3)
    first = _draws()
    seeds.seed_everything(42, 3)
    assert _draws() == first


def test_ranks_and_roots_get_different_streams():
    streams = []
    for root, rank in [(42, 0), (42, 1), (43, 0)]:
        seeds.seed_everything(root, rank)
        streams.append(_draws())
    for i, a in enumerate(streams):
        for b in streams[i + 1 :]:
            assert all(x != y for x, y in zip(a, b))


def test_rank_seed_is_a_stable_hash_of_root_and_rank():
    info = seeds.seed_everything(1234, 5)
    assert info["rank_seed"] == seeds.derive_seed(1234, "rank", 5)
    # Pinned: the same root seed must give the same rank seed on every machine and release.
    assert seeds.derive_seed(1234, "rank", 5) == 2409942937258163664
    assert 0 <= info["rank_seed"] < 2**63
    assert info["rank_seed"] != seeds.derive_seed(1235, "rank", 5) != seeds.derive_seed(1234, "rank", 6)
    assert (info["root_seed"], info["rank"], info["deterministic"]) == (1234, 5, False)
    assert info["seeded"]["python"] and info["seeded"]["numpy"] and info["seeded"]["torch"]


def test_deterministic_mode_turns_on_torchs_deterministic_algorithms():
    info = seeds.seed_everything(1, 0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8" == info["cublas_workspace_config"]
    assert info["deterministic"] is True


def test_non_integer_seeds_are_usage_errors():
    for bad in ("42", 4.2, True, None):
        with pytest.raises(UsageError, match="root_seed must be an integer"):
            seeds.seed_everything(bad, 0)


def test_capture_and_restore_cover_python_numpy_and_torch():
    seeds.seed_everything(9, 0)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    state = seeds.capture_rng_state()
    expected = (_draws(), float(np.random.randn()))
    seeds.seed_everything(10, 0)
    seeds.restore_rng_state(state)
    assert (_draws(), float(np.random.randn())) == expected
    assert set(state) >= {"python", "numpy", "torch"}


def test_record_writes_one_json_file_per_rank_next_to_the_manifest(tmp_path):
    for rank in (0, 3):
        path = seeds.record(tmp_path, seeds.seed_everything(77, rank, deterministic=rank == 3))
        assert path == tmp_path / "seeds" / f"rank-{rank:05d}.json"
    doc = json.loads((tmp_path / "seeds" / "rank-00003.json").read_text())
    assert (doc["root_seed"], doc["rank"], doc["deterministic"]) == (77, 3, True)
    assert doc["rank_seed"] == seeds.derive_seed(77, "rank", 3)
    assert sorted(p.name for p in (tmp_path / "seeds").iterdir()) == ["rank-00000.json", "rank-00003.json"]


class Noise(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> tuple:
        return random.random(), float(np.random.rand()), float(torch.rand(()))


def _epochs(n: int) -> list[list[tuple]]:
    loader = torch.utils.data.DataLoader(
        Noise(), batch_size=None, num_workers=2, worker_init_fn=seeds.worker_init_fn
    )
    return [[tuple(float(v) for v in item) for item in loader] for _ in range(n)]


def test_dataloader_workers_are_seeded_from_the_rank_seed():
    seeds.seed_everything(5, 0)
    run = _epochs(2)
    seeds.seed_everything(5, 0)
    assert _epochs(2) == run  # reproducible
    seeds.seed_everything(5, 1)
    assert _epochs(1)[0] != run[0]  # another rank draws other numbers
    epoch0, epoch1 = run
    assert epoch0 != epoch1  # a new epoch draws new numbers
    # Worker 0 serves items 0 and 2, worker 1 items 1 and 3: their python and numpy streams differ.
    assert epoch0[0][0] != epoch0[1][0] and epoch0[0][1] != epoch0[1][1]


def test_worker_init_fn_needs_seed_everything_first(monkeypatch):
    monkeypatch.delitem(os.environ, seeds.RANK_SEED_ENV, raising=False)
    with pytest.raises(UsageError, match="seed_everything"):
        seeds.worker_init_fn(0)


def test_a_worker_finds_the_rank_seed_in_the_environment_and_never_loads_mpi():
    # A spawned worker re-imports hpcx.runtime.seeds: the module global is gone, the environment is not.
    code = (
        "import os, random, sys\n"
        "os.environ['HPCX_RANK_SEED'] = '123'\n"
        "from hpcx.runtime import seeds\n"
        "seeds.worker_init_fn(1)\n"
        "expected = random.Random(seeds.worker_seed(123, 1, 0)).random()\n"
        "assert random.random() == expected\n"
        "print('mpi4py' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False"]


def test_importing_seeds_loads_neither_torch_nor_numpy():
    code = "import sys, hpcx.runtime.seeds; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert not set(out.stdout.split()) & {"torch", "numpy", "mpi4py"}
