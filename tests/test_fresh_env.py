"""Every lmsi module imports in an environment holding only the declared dependencies: the runtime
complement of test_layout's static "every imported library is declared" check (which cannot see
what a declared library itself needs, nor an import that only works through an undeclared package).

A fresh venv from the index would take minutes; the same environment is built offline instead: the
closure of pyproject's dependencies (requirements with their markers and extras evaluated, read from
the installed distributions' metadata), each distribution's files (its RECORD) linked into a temp
site dir, and an isolated interpreter (`-I -S`: no site-packages, no user site, no PYTHONPATH) whose
path is the stdlib, that dir and lmsi's src. The function-local imports of third-party libraries
are imported too: in the base environment, or in base + the extra that declares the library.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import os
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import lmsi

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# lazy imports whose root belongs to a base dependency but which need an extra (torch's writer needs tensorboard)
NEEDS_EXTRA = {"torch.utils.tensorboard": "trackers"}


def closure(reqs: list[str]) -> tuple[set[str], list[str]]:
    """Installed distributions the requirements pull in, recursively; and those missing here."""
    seen: dict[str, set[str]] = {}
    missing, todo = [], [Requirement(r) for r in reqs]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen and req.extras <= seen[name]:
            continue
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            missing.append(str(req))
            continue
        seen[name] = seen.get(name, set()) | set(req.extras)
        for text in dist.requires or []:
            sub = Requirement(text)
            envs = [{"extra": e} for e in ["", *seen[name]]]
            if sub.marker is None or any(sub.marker.evaluate(env) for env in envs):
                todo.append(sub)
    return set(seen), missing


@functools.cache
def _owners() -> dict[str, set[str]]:
    """Top-level entry of site-packages -> the installed distributions with files in it."""
    owners: dict[str, set[str]] = {}
    for dist in md.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        for top in {f.parts[0] for f in dist.files or []}:
            owners.setdefault(top, set()).add(name)
    return owners


def link_site(dists: set[str], site: Path) -> None:
    """Each distribution's installed files (from its RECORD) linked at their place under site/: a
    top-level folder that no other distribution shares as one link, else file by file."""
    for name in dists:
        dist = md.distribution(name)
        base = Path(dist.locate_file(""))
        for f in dist.files or []:
            if f.parts[0] == "..":
                continue  # scripts outside site-packages
            whole = _owners()[f.parts[0]] == {canonicalize_name(name)}
            rel = Path(f.parts[0]) if whole else Path(f)
            src, dst = base / rel, site / rel
            if src.exists() and not dst.is_symlink():
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.symlink_to(src)


def lazy_imports() -> set[str]:
    """Third-party modules lmsi imports inside functions (the top-level ones come with its modules)."""
    found = set()
    for p in (SRC / "lmsi").rglob("*.py"):
        for fn in ast.walk(ast.parse(p.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for n in ast.walk(fn):
                    if isinstance(n, ast.Import):
                        found |= {a.name for a in n.names}
                    elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
                        found.add(n.module)
    return {m for m in found if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] != "lmsi"}


def extra_of(module: str) -> str | None:
    """The extra that declares the distribution behind `module` (None: a base dependency)."""
    if module in NEEDS_EXTRA:
        return NEEDS_EXTRA[module]
    root = module.split(".")[0]  # a library not installed here: its module name as its distribution name
    dists = {canonicalize_name(d) for d in md.packages_distributions().get(root, [root])}
    base = {canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]}
    if dists & base:
        return None
    for extra, reqs in PROJECT["optional-dependencies"].items():
        if dists & {canonicalize_name(Requirement(r).name) for r in reqs}:
            return extra
    return "UNDECLARED"


SCRIPT = """
import importlib, site, sys
for d in sys.argv[1].split(","):
    site.addsitedir(d)
sys.path.insert(0, sys.argv[2])
bad = []
for m in sys.argv[3:]:
    try:
        importlib.import_module(m)
    except Exception as e:
        bad.append(f"{m}: {type(e).__name__}: {e}")
print("\\n".join(bad))
sys.exit(1 if bad else 0)
"""


def _start(sites: list[Path], modules: list[str]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    cmd = [sys.executable, "-I", "-S", "-c", SCRIPT, ",".join(map(str, sites)), str(SRC), *modules]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def base_site(tmp_path_factory) -> tuple[set[str], Path]:
    """The base dependencies' closure and a site dir holding just it."""
    base, missing = closure(PROJECT["dependencies"])
    assert not missing, f"declared dependencies not installed here: {missing}"
    assert "pytest" not in base and "lmsi" not in base
    site = tmp_path_factory.mktemp("env") / "base"
    link_site(base, site)
    return base, site


def test_every_module_imports_with_declared_dependencies_only(base_site, tmp_path):
    base, site = base_site
    # __main__ modules run the CLI when imported
    own = sorted(m.name for m in pkgutil.walk_packages(lmsi.__path__, "lmsi.") if not m.name.endswith("__main__"))
    lazy: dict[str | None, list[str]] = {}
    for m in sorted(lazy_imports()):
        lazy.setdefault(extra_of(m), []).append(m)
    assert "UNDECLARED" not in lazy, f"imported inside functions but declared nowhere: {lazy['UNDECLARED']}"
    runs = {"base": _start([site], own + lazy.pop(None, []))}
    skipped = []
    for extra, modules in sorted(lazy.items()):
        dists, absent = closure(PROJECT["dependencies"] + PROJECT["optional-dependencies"][extra])
        if absent:  # an extra not installed on this machine (vllm, wandb) cannot be built offline
            skipped.append(f"{extra} ({', '.join(absent)})")
            continue
        link_site(dists - base, tmp_path / extra)
        runs[extra] = _start([site, tmp_path / extra], modules)
    failed = {}
    for name, proc in runs.items():
        out, _ = proc.communicate(timeout=300)
        if proc.returncode:
            failed[name] = out[-3000:]
    assert not failed, "imports failing with the declared dependencies only:\n" + "\n".join(
        f"[{k}] {v}" for k, v in failed.items()
    )
    print(f"imported {len(own)} lmsi modules; extras checked: {sorted(runs)}; not installed here: {skipped}")


def test_the_check_sees_an_undeclared_library(base_site):
    """pytest is installed here but declared only for tests: the base environment must not hold it."""
    proc = _start([base_site[1]], ["yaml", "pytest"])
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "pytest: ModuleNotFoundError" in out and "yaml:" not in out, out
