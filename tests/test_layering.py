"""The layers of the package: the maths never imports Lightning or the loop; nothing below the loop imports it.

Read from the source (every ``import`` statement, at any depth), so an import hidden inside a
function counts too.
"""

import ast
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

PACKAGE = REPO / "utal_lightning"
GLUE = {"data/datamodule.py", "models/modules.py"}  # the LightningDataModule and the LightningModules
MATHS = sorted(
    str(p.relative_to(PACKAGE))
    for folder in ("data", "eval", "pseudo", "models", "video")
    for p in (PACKAGE / folder).rglob("*.py")
    if str(p.relative_to(PACKAGE)) not in GLUE
)
BELOW_THE_LOOP = sorted(
    [*MATHS, *GLUE, *(str(p.relative_to(PACKAGE)) for p in (PACKAGE / "reporting").rglob("*.py")), "distributed.py"]
)


def imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Every module an ``import`` / ``from ... import`` in ``path`` names (relative imports resolved
    against ``package``, by default the one ``path`` is in)."""
    names = set()
    if package is None:
        package = ".".join(("utal_lightning", *path.relative_to(PACKAGE).parent.parts))
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _offending(names: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden))


def test_the_layer_lists_are_not_empty():
    assert len(MATHS) >= 20 and "pseudo/cci.py" in MATHS and "eval/detection_map.py" in MATHS
    assert "models/cola.py" in MATHS and "models/modules.py" not in MATHS


@pytest.mark.parametrize("module", MATHS)
def test_the_maths_imports_neither_lightning_nor_the_loop(module):
    forbidden = (
        "lightning",
        "pytorch_lightning",
        "utal_lightning.loop",
        "utal_lightning.lightning_cli",
        "utal_lightning.models.modules",
        "utal_lightning.data.datamodule",
        "utal_lightning.reporting",
    )
    assert _offending(imported_modules(PACKAGE / module), forbidden) == []


@pytest.mark.parametrize("module", BELOW_THE_LOOP)
def test_nothing_below_the_loop_imports_it(module):
    forbidden = ("utal_lightning.loop", "utal_lightning.lightning_cli", "utal_lightning.cli")
    assert _offending(imported_modules(PACKAGE / module), forbidden) == []


RUNTIME = sorted(str(p.relative_to(PACKAGE)) for p in (PACKAGE / "runtime").rglob("*.py"))


def test_the_runtime_list_is_not_empty():
    assert "runtime/preemption.py" in RUNTIME


@pytest.mark.parametrize("module", RUNTIME)
def test_the_runtime_room_imports_neither_the_loop_nor_the_clis(module):
    forbidden = ("utal_lightning.loop", "utal_lightning.lightning_cli", "utal_lightning.cli")
    assert _offending(imported_modules(PACKAGE / module), forbidden) == []


LOOP = sorted(str(p.relative_to(PACKAGE)) for p in (PACKAGE / "loop").rglob("*.py"))


@pytest.mark.parametrize("module", LOOP)
def test_the_loop_imports_neither_cli(module):
    assert "loop/refresh.py" in LOOP and "loop/schedule.py" in LOOP
    assert _offending(imported_modules(PACKAGE / module), ("utal_lightning.lightning_cli", "utal_lightning.cli")) == []


def test_the_check_sees_nested_and_relative_imports(tmp_path):
    # The guard itself must be able to fail: imports inside functions and relative ones are found.
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from lightning.pytorch import Trainer\n\n\nfrom ..loop import refresh\n")
    names = imported_modules(probe, package="utal_lightning.pseudo")
    assert _offending(names, ("lightning",)) == ["lightning.pytorch", "lightning.pytorch.Trainer"]
    assert _offending(names, ("utal_lightning.loop",)) == ["utal_lightning.loop", "utal_lightning.loop.refresh"]


TESTS = REPO / "tests"
SHARED = ("helpers", "reference")  # what test modules may import of tests/


def _imports_of_other_tests(path: Path) -> list[str]:
    return sorted(
        n for n in imported_modules(path, package="tests") if n.startswith("tests.") and n.split(".")[1] not in SHARED
    )


@pytest.mark.parametrize("module", sorted(str(p.relative_to(TESTS)) for p in TESTS.rglob("*.py")))
def test_tests_share_helpers_not_each_other(module):
    """Test modules import what they share from tests.helpers or tests.reference, never from another test
    module (moving or deleting one test file must not break another)."""
    assert _imports_of_other_tests(TESTS / module) == []


def test_the_tests_check_can_fail(tmp_path):
    probe = tmp_path / "test_probe.py"
    probe.write_text("from tests.helpers.fit import fit\nfrom tests.e2e.test_feel_loop import feel_run\n")
    assert _imports_of_other_tests(probe) == ["tests.e2e.test_feel_loop", "tests.e2e.test_feel_loop.feel_run"]
