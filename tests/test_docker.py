"""The Dockerfile, .dockerignore and the documented docker commands (docs/clusters.md) agree (no Docker engine
needed)."""

import fnmatch
import json
import re
import shlex

from tests.helpers.paths import REPO

LIGHTNING_COMMANDS = {"fit", "validate", "test", "predict"}
TOOL_COMMANDS = {"synth", "check", "evaluate", "baseline"}


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = (REPO / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _ignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, enough for these patterns: a pattern is matched from the context root, a
    leading ``**/`` matches any depth, and excluding a folder excludes what it holds."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("!"):
            raise AssertionError("exceptions are not modelled by this test")
        if pattern.startswith("**/"):
            tail = pattern[3:]
            if any(fnmatch.fnmatchcase(part, tail) for part in parts):
                return True
        elif any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            return True
    return False


def _documented_docker_commands() -> list[list[str]]:
    text = (REPO / "docs" / "clusters.md").read_text()
    section = text.split("## Docker", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    commands = []
    for block in blocks:
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            if line.strip().startswith("docker "):
                commands.append(shlex.split(line, comments=True))
    return commands


def test_dockerfile_installs_the_package_and_runs_utal():
    instructions = _instructions()
    kinds = [k for k, _ in instructions]
    build_args = dict(arg.split("=", 1) for k, arg in instructions if k == "ARG" and "=" in arg)
    image = next(arg for k, arg in instructions if k == "FROM")
    image = re.sub(r"\$\{(\w+)\}", lambda m: build_args[m.group(1)], image)
    assert "cuda" in image and "runtime" in image, image
    # exec-form ENTRYPOINT: the container *is* the utal command
    entrypoint = json.loads(next(arg for k, arg in instructions if k == "ENTRYPOINT"))
    assert entrypoint == ["utal"]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^\[project\.scripts\]\s*\nutal = "utal_lightning\.cli:main"', pyproject, flags=re.M)
    copies = [arg.split() for k, arg in instructions if k == "COPY"]
    copied = {src for args in copies for src in args[:-1]}
    assert {"pyproject.toml", "README.md", "utal_lightning", "configs"} <= copied  # README: pyproject's readme
    runs = " ".join(arg for k, arg in instructions if k == "RUN")
    # the package with the wandb extra (configs/wandb.yaml needs it)
    assert re.search(r"pip install\b[^&]*\s'\.\[wandb\]'(\s|$)", runs), "installed with `pip install '.[wandb]'`"
    # the base image's torch is kept: pip gets it as a constraint
    assert "--constraint" in runs and "torch.__version__" in runs
    workdirs = [arg for k, arg in instructions if k == "WORKDIR"]
    assert workdirs[-1] == "/work"
    assert "/data" in runs and any(k == "VOLUME" and "/data" in arg for k, arg in instructions)
    # the package is installed before the final WORKDIR, so `utal` works from any folder
    assert kinds.index("ENTRYPOINT") > max(i for i, k in enumerate(kinds) if k == "RUN")


def test_dockerignore_excludes_local_state_but_not_what_the_image_copies():
    patterns = _ignore_patterns()
    for path in (
        ".venv/bin/python",
        "data/THUMOS14/gt.json",
        "runs/x/checkpoints/last.ckpt",
        "wandb/latest-run",
        ".git/HEAD",
        "utal_lightning/__pycache__/cli.cpython-311.pyc",
        "model.ckpt",
        "runs",
    ):
        assert _ignored(path, patterns), path
    copied = ["pyproject.toml", "README.md", "configs/thumos_copl.yaml", "configs/ablations/weak.yaml"]
    copied += [p.relative_to(REPO).as_posix() for p in (REPO / "utal_lightning").rglob("*.py")]
    assert "utal_lightning/data/datamodule.py" in copied
    for path in copied:
        assert not _ignored(path, patterns), path


def test_documented_docker_commands_match_the_dockerfile():
    commands = _documented_docker_commands()
    builds = [c for c in commands if c[1] == "build"]
    run_commands = [c for c in commands if c[1] == "run"]
    assert builds and run_commands
    assert builds[0] == ["docker", "build", "-t", "utal-lightning", "."]
    tag = builds[0][3]
    assert (REPO / "Dockerfile").is_file()  # `.` is the repository root
    workdir = [arg for k, arg in _instructions() if k == "WORKDIR"][-1]
    for command in run_commands:
        args = command[2:]
        i, volumes, flags = 0, [], []
        while args[i].startswith("-"):  # docker options up to the image name
            if args[i] in ("-v", "--volume", "-e", "--env", "--gpus"):
                flags.append((args[i], args[i + 1]))
                i += 2
            else:
                flags.append((args[i], None))
                i += 1
        image, utal_args = args[i], args[i + 1 :]
        volumes = [value for flag, value in flags if flag in ("-v", "--volume")]
        assert image == tag
        assert ("--gpus", "all") in flags
        assert any(v.split(":")[1] == "/data" for v in volumes), volumes
        for v in volumes:
            target = v.split(":")[1]
            assert target == "/data" or target.startswith(workdir + "/"), target
        assert utal_args[0] in LIGHTNING_COMMANDS | TOOL_COMMANDS
        configs = [utal_args[j + 1] for j, a in enumerate(utal_args) if a == "--config"]
        for config in configs:  # relative to WORKDIR, where configs/ is copied
            assert not config.startswith("/") and (REPO / config).is_file(), config
