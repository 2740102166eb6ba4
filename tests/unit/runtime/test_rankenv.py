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


def test_mpich_and_intel_mpi_pmi_variables():
    # mpiexec.hydra (MPICH, Intel MPI) sets PMI_RANK/PMI_SIZE and MPI_LOCALRANKID, nothing Open MPI names.
    r = detect({"PMI_RANK": "3", "PMI_SIZE": "4", "MPI_LOCALRANKID": "1", "PMI_FD": "6"})
    assert (r.rank, r.size, r.local_rank, r.launcher) == (3, 4, 1, "mpiexec")
    r = detect({"PMI_RANK": "2", "PMI_SIZE": "4", "PMI_LOCAL_RANK": "0"})
    assert (r.rank, r.size, r.local_rank) == (2, 4, 0)


def test_pmi_wins_over_the_srun_step_of_hydra_s_proxy():
    # Under Slurm, hydra starts one proxy per node with srun: its ranks inherit the proxy's SLURM_PROCID (the
    # node index) and SLURM_STEP_NUM_TASKS (the node count); PMI_RANK is the rank.
    env = {
        "PMI_RANK": "5",
        "PMI_SIZE": "8",
        "MPI_LOCALRANKID": "1",
        "SLURM_PROCID": "1",
        "SLURM_STEP_NUM_TASKS": "2",
        "SLURM_LOCALID": "0",
    }
    r = detect(env)
    assert (r.rank, r.size, r.local_rank) == (5, 8, 1)


def test_pmix_alone():
    r = detect({"PMIX_RANK": "1", "PMIX_SIZE": "2", "PMIX_LOCAL_RANK": "1"})
    assert (r.rank, r.size, r.local_rank, r.launcher) == (1, 2, 1, "pmix")


def test_a_torchrun_worker_is_itself_under_any_outer_launcher():
    # torchrun's agent ran one per node under mpirun or srun; each worker it spawned has its own global rank.
    outer = {
        "OMPI_COMM_WORLD_RANK": "1",
        "OMPI_COMM_WORLD_SIZE": "2",
        "SLURM_PROCID": "1",
        "SLURM_STEP_NUM_TASKS": "2",
    }
    worker = {**outer, "RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "TORCHELASTIC_RUN_ID": "j"}
    assert (detect(worker).rank, detect(worker).size, detect(worker).launcher) == (5, 8, "torchrun")
    assert detect(outer).rank == 1  # the agent itself
