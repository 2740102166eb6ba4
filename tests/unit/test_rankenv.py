from hpcx.runtime.rankenv import detect


def test_mpirun_wins():
    env = {
        "OMPI_COMM_WORLD_RANK": "1",
        "OMPI_COMM_WORLD_SIZE": "4",
        "OMPI_COMM_WORLD_LOCAL_RANK": "1",
        "SLURM_PROCID": "0",
        "SLURM_STEP_NUM_TASKS": "1",
        "SLURMD_NODENAME": "n2",
    }
    r = detect(env)
    assert (r.rank, r.size, r.local_rank, r.node, r.launcher) == (1, 4, 1, "n2", "mpirun")


def test_srun_step():
    r = detect(
        {
            "SLURM_PROCID": "3",
            "SLURM_STEP_NUM_TASKS": "4",
            "SLURM_LOCALID": "1",
            "SLURM_JOB_ID": "9",
            "SLURM_RESTART_COUNT": "2",
        }
    )
    assert (r.rank, r.size, r.local_rank, r.launcher, r.job_id, r.attempt) == (3, 4, 1, "srun", "9", 2)


def test_batch_step_alone_is_one_rank():
    # The batch script sees SLURM_NTASKS of the whole allocation but is one process.
    r = detect({"SLURM_PROCID": "0", "SLURM_NTASKS": "8", "SLURM_JOB_ID": "9"})
    assert (r.rank, r.size, r.launcher) == (0, 1, "none")


def test_torchrun():
    r = detect({"RANK": "2", "WORLD_SIZE": "8", "LOCAL_RANK": "0"})
    assert (r.rank, r.size, r.launcher) == (2, 8, "torchrun")


def test_gpu_geometry_errors_say_what_to_change():
    import pytest

    from hpcx.errors import RuntimeFailure
    from hpcx.runtime.dist import gpu_for_rank

    assert gpu_for_rank(1, 2, 2) == 1
    with pytest.raises(RuntimeFailure, match="use --ntasks-per-node 2 or --gpus-per-node 4"):
        gpu_for_rank(3, 4, 2)
    with pytest.raises(RuntimeFailure, match="sees none"):
        gpu_for_rank(0, 1, 0)
