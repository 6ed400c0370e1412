"""llama.cpp installs that do not work: an install lacking a Python dependency (setup.sh once
installed llama-cpp-python with --no-deps, so `import llama_cpp` failed on `diskcache`) is named
for what it lacks, setup.sh's own import check says the same without touching pip, and the
sample bench reports an engine that could not start as a row instead of dying."""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lmsi import bench
from lmsi.backends import get_sampler
from lmsi.backends import llamacpp as llamacpp_backend

ROOT = Path(__file__).resolve().parents[1]


def _llama_imports() -> bool:
    return subprocess.run([sys.executable, "-c", "import llama_cpp"], capture_output=True).returncode == 0


def _forget_llama_cpp(monkeypatch) -> None:
    """Make the next `import llama_cpp` run again (restored after the test)."""
    for k in [k for k in sys.modules if k == "llama_cpp" or k.startswith("llama_cpp.")]:
        monkeypatch.delitem(sys.modules, k)


@pytest.fixture
def llama_without_diskcache(tmp_path, monkeypatch):
    """A llama_cpp that is installed but cannot import its dependency diskcache, as a
    `pip install --no-deps llama-cpp-python` leaves it."""
    pkg = tmp_path / "site" / "llama_cpp"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("import diskcache  # noqa: F401  (llama_cpp.llama_cache does this)\n")
    _forget_llama_cpp(monkeypatch)
    monkeypatch.setitem(sys.modules, "diskcache", None)  # None here: `import diskcache` fails
    monkeypatch.syspath_prepend(str(tmp_path / "site"))


def test_an_install_missing_a_dependency_is_named_for_it(llama_without_diskcache):
    msg = llamacpp_backend.llama_cpp_import_error()
    assert msg is not None and "\n" not in msg
    assert "llama-cpp-python is installed but does not import" in msg
    assert "No module named 'diskcache'" in msg and "pip install diskcache" in msg
    with pytest.raises(RuntimeError) as e:
        get_sampler("llamacpp", "model.gguf")
    assert str(e.value) == msg


@pytest.mark.skipif(not importlib.util.find_spec("llama_cpp"), reason="llama-cpp-python not installed")
def test_the_real_package_without_diskcache_is_named_for_it(monkeypatch):
    _forget_llama_cpp(monkeypatch)
    monkeypatch.setitem(sys.modules, "diskcache", None)
    msg = llamacpp_backend.llama_cpp_import_error()
    assert msg and "No module named 'diskcache'" in msg and "pip install diskcache" in msg


def test_an_absent_llama_cpp_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    msg = llamacpp_backend.llama_cpp_import_error()
    assert msg and "needs llama-cpp-python" in msg and "setup.sh" in msg
    with pytest.raises(RuntimeError, match="needs llama-cpp-python"):
        get_sampler("llamacpp", "model.gguf")


@pytest.mark.skipif(not _llama_imports(), reason="llama-cpp-python does not import here")
def test_a_working_install_has_no_import_error():
    assert llamacpp_backend.llama_cpp_import_error() is None


# -- setup.sh's import check, run the way setup.sh runs it ------------------------------------


def _setup_copy(tmp_path) -> Path:
    """scripts/setup.sh in a tree of its own whose .venv/bin/python is this interpreter, except
    that `python -m pip` fails: the check must never install or build anything."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    py = tmp_path / ".venv" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = -m ] && [ "$2" = pip ]; then echo "pip run by the check: $*" >&2; exit 97; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    py.chmod(0o755)
    return tmp_path / "scripts" / "setup.sh"


def _check(script: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(script), "--check-llama"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


@pytest.mark.skipif(not _llama_imports(), reason="llama-cpp-python does not import here")
def test_setup_check_passes_on_a_working_install(tmp_path):
    r = _check(_setup_copy(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "llama-cpp-python imports" in r.stdout


def test_setup_check_names_what_a_broken_install_lacks(tmp_path):
    fake = tmp_path / "fake" / "llama_cpp"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'diskcache'\", name='diskcache')\n")
    r = _check(_setup_copy(tmp_path), PYTHONPATH=str(tmp_path / "fake"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "pip run by the check" not in r.stderr  # ...and it neither installed nor built anything
    assert "No module named 'diskcache'" in r.stdout + r.stderr, r.stdout + r.stderr


def _setup_run(tmp_path, built: bool) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run all of setup.sh in a copy whose pip only records its arguments, against a stand-in
    llama_cpp that imports once "built" and once its dependencies are "installed" (the stand-in
    pip creates those flags as the real one would make them true). Returns (run, pip calls)."""
    script = _setup_copy(tmp_path)
    flags, log = tmp_path / "flags", tmp_path / "pip.log"
    flags.mkdir()
    if built:
        (flags / "built").touch()
    fake = tmp_path / "fake" / "llama_cpp"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "import os\n"
        f"FLAGS = {str(flags)!r}\n"
        "if not os.path.exists(os.path.join(FLAGS, 'built')):\n"
        "    raise ModuleNotFoundError(\"No module named 'llama_cpp'\", name='llama_cpp')\n"
        "if not os.path.exists(os.path.join(FLAGS, 'deps')):\n"
        "    raise ModuleNotFoundError(\"No module named 'diskcache'\", name='diskcache')\n"
        "__version__ = '0.3.36'\n"
        "def llama_print_system_info():\n"
        "    return b'CPU : AVX2 = 1 | FMA = 1 |'\n"
    )
    py = script.parent.parent / ".venv" / "bin" / "python"
    py.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = -m ] && [ "$2" = pip ]; then\n'
        f'  echo "$*" >> {log}\n'
        f'  case "$*" in *--force-reinstall*llama-cpp-python*) touch {flags}/built ;; esac\n'
        f'  case "$*" in *diskcache*) [ -e {flags}/built ] && touch {flags}/deps ;; esac\n'
        "  exit 0\n"
        "fi\n"
        f'exec {sys.executable} "$@"\n'
    )
    r = subprocess.run(
        ["bash", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "fake")},
    )
    return r, log.read_text().splitlines() if log.exists() else []


@pytest.mark.skipif(platform.machine() != "x86_64", reason="setup.sh builds llama.cpp on x86-64 only")
@pytest.mark.skipif(not importlib.util.find_spec("llama_cpp"), reason="needs llama-cpp-python's metadata")
def test_setup_on_a_fresh_venv_builds_llama_cpp_then_its_dependencies(tmp_path):
    r, pip = _setup_run(tmp_path, built=False)
    assert r.returncode == 0, r.stdout + r.stderr
    build = next(i for i, c in enumerate(pip) if "--force-reinstall" in c)
    assert any("diskcache" in c for c in pip[build + 1 :]), pip  # --no-deps build, then its deps
    assert "llama-cpp-python imports" in r.stdout  # ...and setup says the result imports


@pytest.mark.skipif(platform.machine() != "x86_64", reason="setup.sh builds llama.cpp on x86-64 only")
@pytest.mark.skipif(not importlib.util.find_spec("llama_cpp"), reason="needs llama-cpp-python's metadata")
def test_setup_rerun_on_a_build_without_its_dependencies_does_not_rebuild(tmp_path):
    """A venv an older setup.sh left (llama.cpp built, diskcache missing): the rerun installs the
    dependencies in seconds instead of rebuilding llama.cpp for ten minutes."""
    r, pip = _setup_run(tmp_path, built=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not any("--force-reinstall" in c for c in pip), pip
    assert any("diskcache" in c for c in pip), pip
    assert "llama-cpp-python imports" in r.stdout


# -- the sample bench: an engine that fails to start is a row -----------------------------------


@pytest.fixture
def quick_bench(monkeypatch):
    monkeypatch.setattr(bench, "matmul_gflops", lambda *a, **k: 50.0)  # bf16 matmuls take minutes on AVX2

    def run(spec, engines):
        return bench.run_bench(str(spec), "arith", 2, 2, 1, 4, 0.7, engines, 8, log=lambda m: None)

    return run


def test_bench_of_only_an_engine_that_cannot_start_reports_it(tiny_model_dir, quick_bench):
    text, results = quick_bench(tiny_model_dir, ["llamacpp"])
    assert [r["engine"] for r in results] == ["llamacpp"]
    assert "not a GGUF" in results[0]["error"]
    row = next(line for line in text.splitlines() if line.startswith("| llamacpp |"))
    assert "not a GGUF" in row


def test_bench_reports_a_broken_llama_cpp_beside_the_engines_that_ran(
    tiny_model_dir, quick_bench, monkeypatch, llama_without_diskcache
):
    monkeypatch.setattr(bench, "gguf_file", lambda spec: Path("model.gguf"), raising=False)
    text, results = quick_bench(tiny_model_dir, ["naive", "llamacpp"])
    assert [r["engine"] for r in results] == ["naive", "llamacpp"]
    assert results[0]["tok_s"] > 0 and "error" not in results[0]
    assert "No module named 'diskcache'" in results[1]["error"]
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert any(r.startswith("| naive |") and "| 1.00 |" in r for r in rows), text
    assert any(r.startswith("| llamacpp |") and "diskcache" in r for r in rows), text
