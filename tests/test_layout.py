"""The layout stays as declared: layers (import-linter), lint and format (ruff), small modules,
lmsi's own imports at the top of files, and one reader of a run's saved config."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "lmsi"
MODULES = sorted(PKG.rglob("*.py"))
MAX_LINES, MAX_PIPELINE = 350, 300


def _tool(name: str) -> str:
    exe = Path(sys.executable).parent / name
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: ./scripts/setup.sh test installs it")
    return found


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def test_import_layers_hold():
    r = _run(_tool("lint-imports"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "broken" in r.stdout and " 0 broken" in r.stdout


def test_contracts_name_every_module_and_ignore_nothing():
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = cfg["contracts"]
    assert not any("ignore_imports" in c for c in contracts)
    layered = {m.strip() for c in contracts for layer in c.get("layers", []) for m in layer.split("|")}
    top = {p.stem for p in PKG.glob("*.py") if p.stem != "__init__"} | {p.name for p in PKG.iterdir() if p.is_dir()}
    missing = sorted(f"lmsi.{m}" for m in top if m != "__pycache__" and f"lmsi.{m}" not in layered)
    assert not missing, f"modules outside every layer (add them to [tool.importlinter] in pyproject): {missing}"


def test_ruff_lint_and_format():
    ruff = _tool("ruff")
    r = _run(ruff, "check", "src", "tests", "benchmarks", "scripts")
    assert r.returncode == 0, r.stdout[-3000:]
    r = _run(ruff, "format", "--check", "src", "tests", "benchmarks", "scripts")
    assert r.returncode == 0, r.stdout[-3000:] + "\nrun: ruff format src tests benchmarks scripts"


def test_modules_stay_small():
    """Counted on ruff-formatted code (line length 120; the format check above keeps it so)."""
    sizes = {p.relative_to(PKG).as_posix(): len(p.read_text().splitlines()) for p in MODULES}
    big = {m: n for m, n in sizes.items() if n > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"
    assert sizes["pipeline.py"] <= MAX_PIPELINE, f"pipeline.py has {sizes['pipeline.py']} lines"


def _local_lmsi_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            own = (isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("lmsi"))) or (
                isinstance(node, ast.Import) and any(a.name.startswith("lmsi") for a in node.names)
            )
            if own:
                found.append(f"{path.relative_to(PKG)}:{node.lineno}")
    return found


def test_lmsi_imports_sit_at_the_top_of_files():
    """Third-party libraries may load lazily; lmsi's own modules are imported at the top, so the
    import graph (and the layer check) sees every dependency. The backend registry's
    "module:Class" lookup is the one lazy load, and it is no import statement."""
    found = [hit for p in MODULES for hit in _local_lmsi_imports(p)]
    assert not found, f"function-local imports of lmsi modules: {found}"


def test_only_the_run_reader_opens_a_saved_config():
    """A run's config.yaml (and the legacy config.json) is read and written by rundir.py alone; a
    model checkpoint's config.json (models.py) is another matter."""
    allowed = {"rundir.py", "models.py"}
    hits = [
        p.relative_to(PKG).as_posix()
        for p in MODULES
        if p.name not in allowed and ("config.yaml" in p.read_text() or "config.json" in p.read_text())
    ]
    assert not hits, f"modules naming a run's saved config file: {hits}"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_library_is_declared():
    """What the package imports comes from its own declared dependencies (or the extra named
    for it), not transitively from another package's."""
    import importlib.metadata
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_norm(re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0]) for d in project["dependencies"]}
    extras = {
        _norm(re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0])
        for ds in project["optional-dependencies"].values()
        for d in ds
    }
    roots = set()
    for p in MODULES:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                roots |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.split(".")[0])
    third = sorted(r for r in roots if r not in sys.stdlib_module_names and r != "lmsi")
    dists = importlib.metadata.packages_distributions()
    optional = {
        "vllm",
        "ray",
        "llama_cpp",
        "mlflow",
        "wandb",
        "trackio",
    }  # behind extras, with a clear error when missing
    missing = []
    for mod in third:
        names = {_norm(d) for d in dists.get(mod, [mod])}
        pool = declared | (extras if mod in optional else set())
        if not names & pool:
            missing.append(f"{mod} ({', '.join(sorted(names))})")
    assert not missing, f"imported but not declared in pyproject: {missing}"
