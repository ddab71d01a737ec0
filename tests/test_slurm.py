"""The SLURM scripts: valid bash, the directives preemption needs, and what they launch (with a stub
``srun`` that only records its arguments)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

SCRIPTS = [REPO / "slurm" / "single_node.sbatch", REPO / "slurm" / "multi_node.sbatch"]
BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")


def _code(text: str) -> str:
    """The script without comments (whole-line ones and ` # ...` at the end of a line)."""
    return "\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in text.splitlines())


def _directives(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        m = re.match(r"#SBATCH\s+--([\w-]+)(?:=(\S+))?", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_is_valid_bash_with_the_preemption_directives(script):
    subprocess.run([BASH, "-n", str(script)], check=True)
    text = script.read_text()
    for needle in (
        "--signal=SIGUSR1@90",
        "--requeue",
        "--open-mode=append",
        "--ntasks-per-node",
        "srun",
        "WANDB_RUN_ID",
    ):
        assert needle in text, needle
    assert "B:SIGUSR1" not in text  # the signal must reach the srun tasks, not only the batch shell
    assert "--ckpt_path" not in _code(text)  # resume is Lightning's (hpc_ckpt_<n>.ckpt in the run dir)
    directives = _directives(text)
    assert directives["signal"] == "SIGUSR1@90"
    # one task per GPU: --ntasks-per-node equals the GPUs of --gres
    assert directives["gres"] == f"gpu:{directives['ntasks-per-node']}"
    # sbatch reads #SBATCH lines only before the first command
    first_command = next(i for i, line in enumerate(text.splitlines()) if line.strip() and not line.startswith("#"))
    last_directive = max(i for i, line in enumerate(text.splitlines()) if line.startswith("#SBATCH"))
    assert last_directive < first_command
    code = _code(text)
    assert re.search(
        r"srun utal fit .*--trainer\.devices=\"\$GPUS\" --trainer\.num_nodes=\"\$NODES\" --trainer\.strategy=ddp",
        code.replace("\\\n", " "),
    )
    assert "WANDB_RESUME=allow" in code


def test_multi_node_asks_for_several_nodes():
    assert int(_directives(SCRIPTS[1].read_text())["nodes"]) > 1
    assert int(_directives(SCRIPTS[0].read_text())["nodes"]) == 1


def _submit(script, tmp_path, **env):
    """Run ``script`` as SLURM would, with ``srun`` replaced by a stub printing its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "srun"
    stub.write_text('#!/bin/bash\necho "SRUN $*"\necho "ENV $WANDB_RUN_ID $WANDB_RESUME $WANDB_NAME"\n')
    stub.chmod(0o755)
    repo = tmp_path / "repo"
    (repo / "configs").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "configs" / "wandb.yaml", repo / "configs" / "wandb.yaml")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "WANDB_"))}
    base.update(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", SLURM_SUBMIT_DIR=str(repo), VENV=str(tmp_path / "no-venv")
    )
    for name in ("CONFIG", "CONFIGS", "SEED", "SEEDS", "RUN_DIR", "GPUS", "NODES", "EXTRA_ARGS"):
        base.pop(name, None)
    base.update(env)
    out = subprocess.run([BASH, str(script)], env=base, capture_output=True, text=True, check=True).stdout
    srun = next(line for line in out.splitlines() if line.startswith("SRUN ")).split()[1:]
    wandb_env = next(line for line in out.splitlines() if line.startswith("ENV ")).split()[1:]
    return repo, srun, wandb_env


def test_requeued_attempts_share_run_dir_and_wandb_run(tmp_path):
    slurm = dict(
        SLURM_JOB_NAME="exp",
        SLURM_JOB_ID="4242",
        SLURM_NTASKS_PER_NODE="4",
        SLURM_JOB_NUM_NODES="1",
        CONFIG="configs/thumos_copl.yaml",
        SEED="3",
    )
    repo, first, env1 = _submit(SCRIPTS[0], tmp_path, **slurm)
    _, again, env2 = _submit(SCRIPTS[0], tmp_path, SLURM_RESTART_COUNT="1", **slurm)
    assert first == again and env1 == env2
    run_dir = "runs/exp/thumos_copl_seed3"
    assert first[:2] == ["utal", "fit"]
    assert first[2:4] == ["--config", "configs/thumos_copl.yaml"]
    assert first[4:6] == ["--config", "configs/wandb.yaml"]  # its null save_dir means: the run dir
    for arg in (
        "--seed_everything=3",
        "--data.init_args.seed=3",
        "--trainer.devices=4",
        "--trainer.num_nodes=1",
        "--trainer.strategy=ddp",
    ):
        assert arg in first
    assert first[first.index("--trainer.default_root_dir") + 1] == run_dir
    assert not any(a.startswith("--ckpt_path") for a in first)
    wandb_id, resume, name = env1
    assert resume == "allow" and name == "thumos_copl_seed3" and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", wandb_id)
    assert (repo / run_dir / "wandb_run_id").read_text().strip() == wandb_id


def test_job_array_sweeps_configs_and_seeds(tmp_path):
    seen = set()
    for task in range(6):
        _, srun, _ = _submit(
            SCRIPTS[1],
            tmp_path,
            SLURM_JOB_NAME="sweep",
            SLURM_JOB_ID=str(100 + task),
            SLURM_ARRAY_JOB_ID="99",
            SLURM_ARRAY_TASK_ID=str(task),
            SLURM_NTASKS_PER_NODE="2",
            SLURM_JOB_NUM_NODES="2",
            CONFIGS="configs/a.yaml configs/b.yaml",
            SEEDS="0 1 2",
            WANDB_CONFIG="",
        )
        config = srun[srun.index("--config") + 1]
        seed = next(a for a in srun if a.startswith("--seed_everything=")).split("=")[1]
        assert srun.count("--config") == 1  # WANDB_CONFIG empty: no W&B fragment
        assert "--trainer.num_nodes=2" in srun and "--trainer.devices=2" in srun
        seen.add((config, seed))
        assert srun[srun.index("--trainer.default_root_dir") + 1] == f"runs/sweep/{Path(config).stem}_seed{seed}"
    assert seen == {(f"configs/{c}.yaml", str(s)) for c in "ab" for s in range(3)}
