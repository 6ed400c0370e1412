"""The docs stay usable: a short README that links every page, links that resolve, headings that
nest, no paths of one machine, config files that load, and every documented `lmsi` command
accepted by the CLI's argument parser (parsed only, never run)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup
from typer.main import get_command

from lmsi.cli import app
from lmsi.config import RunConfig, load_config

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
SCRIPT = ROOT / "scripts" / "reference_runs.sh"
MAX_README_LINES = 200
# Shell variables a documented command may use without a value in the same code block. Keep this
# tiny: a command with a variable outside it fails, so examples stay runnable as written.
UNRESOLVED_OK: set[str] = set()
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(tmp|work|root|home|Users)/")


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def _split_fences(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Lines outside fenced code blocks, and the (language, body) of each block."""
    prose, blocks, lang, body = [], [], None, []
    for line in text.splitlines():
        fence = re.match(r"^\s*(```|~~~)\s*(\S*)", line)
        if fence and lang is None:
            lang, body = fence.group(2), []
        elif fence:
            blocks.append((lang, "\n".join(body)))
            lang = None
        elif lang is None:
            prose.append(line)
        else:
            body.append(line)
    assert lang is None, "unclosed code fence"
    return prose, blocks


def _links(page: Path) -> list[str]:
    prose, _ = _split_fences(page.read_text())
    text = re.sub(r"`[^`]*`", "", "\n".join(prose))  # links inside inline code are not links
    return LINK.findall(text)


def _slug(heading: str) -> str:
    """The anchor a markdown renderer gives a heading (GitHub's rule)."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


# --- README and pages --------------------------------------------------------------------------


def test_readme_is_short_and_keeps_the_two_commands():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move material to a docs/ page"
    _, blocks = _split_fences(README.read_text())
    bodies = [b.strip() for _, b in blocks]
    assert "./scripts/setup.sh && .venv/bin/lmsi run" in bodies
    test_cmd = "./scripts/setup.sh test && .venv/bin/python -m pytest -q"
    assert test_cmd in bodies
    assert test_cmd in (ROOT / ".ci" / "run").read_text()  # CI runs exactly what the README shows


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_headings_nest(page):
    prose, _ = _split_fences(page.read_text())
    levels = [len(m.group(1)) for line in prose if (m := re.match(r"^(#{1,6})\s+\S", line))]
    assert levels and levels[0] == 1, f"{_rel(page)} must start with one '#' title"
    assert levels.count(1) == 1, f"{_rel(page)} has more than one '#' title"
    for before, after in zip(levels, levels[1:], strict=False):
        assert after <= before + 1, f"{_rel(page)}: a level-{after} heading follows a level-{before} one"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / link.split("#")[0]).resolve() for link in _links(README)}
    missing = [_rel(p) for p in DOCS if p.resolve() not in linked]
    assert not missing, f"README.md does not link these pages: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_relative_links_resolve(page):
    bad = []
    for link in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto:
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            bad.append(link)
        elif anchor and target.suffix == ".md":
            prose, _ = _split_fences(target.read_text())
            slugs = {_slug(m.group(1)) for line in prose if (m := re.match(r"^#{1,6}\s+(.*)", line))}
            if anchor not in slugs:
                bad.append(link)
    assert not bad, f"{_rel(page)}: broken links {bad}"


@pytest.mark.parametrize("page", [*PAGES, *CONFIGS, SCRIPT], ids=_rel)
def test_no_paths_of_one_machine(page):
    hits = [line for line in page.read_text().splitlines() if MACHINE_PATH.search(line)]
    assert not hits, f"{_rel(page)} names machine-local paths: {hits[:3]}"


# --- documented commands -----------------------------------------------------------------------


def _commands(text: str) -> list[tuple[str, list[str]]]:
    """`lmsi` command lines of one bash block, shell variables set in the block filled in."""
    env: dict[str, str] = {}
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        if m := re.fullmatch(r"\s*(\w+)=(\"[^\"]*\"|\S+)\s*", line):  # B=docs/runs/x, C="k=v k2=v2"
            env[m.group(1)] = shlex.split(m.group(2))[0]
            continue
        for segment in re.split(r"\s*(?:&&|\|\||;)\s*", line):
            if not re.match(r"^\s*(\w+=\S+\s+)*(\S*/)?lmsi\s", segment + " "):
                continue
            words = shlex.split(segment, comments=True)
            while re.fullmatch(r"\w+=.*", words[0]):  # VAR=value before the command
                words = words[1:]
            unknown = set(re.findall(r"\$\{?(\w+)\}?", segment)) - set(env)
            if unknown and unknown <= UNRESOLVED_OK:
                continue
            if unknown:  # reported by test_documented_command_parses
                out.append((segment.strip(), [f"<shell variables with no value in this block: {sorted(unknown)}>"]))
                continue
            filled = []
            for w in words:
                if m := re.fullmatch(r"\$\{?(\w+)\}?", w):  # a lone $VAR splits into words, as the shell does
                    filled += shlex.split(env[m.group(1)])
                else:
                    filled.append(re.sub(r"\$\{?(\w+)\}?", lambda m: env[m.group(1)], w))
            out.append((segment.strip(), filled[1:]))
    return out


def _documented_commands() -> list[tuple[str, str, list[str]]]:
    found = []
    for page in PAGES:
        for lang, body in _split_fences(page.read_text())[1]:
            if lang in ("bash", "sh", "shell", ""):
                found += [(_rel(page), line, args) for line, args in _commands(body)]
    for cfg in CONFIGS:  # the launch lines in each config file's header
        lines = [line.lstrip("#").strip() for line in cfg.read_text().splitlines() if line.startswith("#")]
        header = "\n".join(line for line in lines if line.startswith("lmsi "))
        found += [(_rel(cfg), line, args) for line, args in _commands(header)]
    return found


def _parse(args: list[str]) -> tuple[object, dict]:
    """Resolve `lmsi ARGS` to its (sub)command and parse its arguments with typer's click parser
    (`make_context`); nothing is invoked. Parse errors raise typer.TyperException."""
    command = get_command(app)
    ctx = command.make_context("lmsi", list(args), resilient_parsing=False)
    while isinstance(command, TyperGroup):
        name, command, args = command.resolve_command(ctx, list(args))
        ctx = command.make_context(name, list(args), parent=ctx, resilient_parsing=False)
    return command, ctx.params


def _check_config(params: dict) -> None:
    """Overrides name real keys with valid values, and --config names a file in this repo."""
    if "overrides" in params:
        config = params.get("config")
        if config is not None:
            assert (ROOT / config).is_file(), f"--config {config}: no such file in the repository"
            config = ROOT / config
        load_config(config, params["overrides"] or [])


DOCUMENTED = _documented_commands()


def test_the_docs_show_commands():
    assert len(DOCUMENTED) >= 40, len(DOCUMENTED)  # the collector still finds them
    assert any(page == "README.md" and args == ["run"] for page, _, args in DOCUMENTED)


@pytest.mark.parametrize(("page", "line", "args"), DOCUMENTED, ids=[f"{p}: {c[:60]}" for p, c, _ in DOCUMENTED])
def test_documented_command_parses(page, line, args):
    try:
        _, params = _parse(args)
        _check_config(params)
    except (typer.TyperException, typer.Exit, ValueError) as e:
        msg = e.format_message() if hasattr(e, "format_message") else repr(e)
        pytest.fail(f"{page}: `{line}` does not parse: {msg}")


def test_a_wrong_flag_fails_the_parse():
    with pytest.raises(typer.TyperException, match="No such option"):
        _parse(["run", "--samples-form", "runs/x"])
    with pytest.raises(typer.TyperException, match="No such command"):
        _parse(["runn"])
    with pytest.raises(ValueError):
        _check_config(_parse(["run", "sample.paths=8"])[1])


# --- configs and the reference script ----------------------------------------------------------


@pytest.mark.parametrize("cfg", CONFIGS, ids=_rel)
def test_config_file_loads(cfg):
    load_config(cfg)
    assert cfg.read_text().startswith("#"), f"{_rel(cfg)} needs a header comment with its launch line"


def test_default_config_is_the_default_run():
    assert load_config(ROOT / "configs" / "default.yaml").to_dict() == RunConfig().to_dict()


def test_reference_script_uses_every_config(tmp_path):
    """Dry-run scripts/reference_runs.sh with a stand-in `lmsi` that prints its arguments: each
    command parses, its config loads, and every reference config is used."""
    stub = tmp_path / "lmsi"
    stub.write_text(
        f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -c 'import shlex, sys; print(shlex.join(sys.argv[1:]))' \"$@\"\n"
    )
    stub.chmod(0o755)
    steps = "signal05 signal15 multiarith_cpu multiarith_cpu_variants vote_check ceiling gsm8k15_cpu multiarith gsm8k15".split()
    env = {**os.environ, "LMSI": str(stub), "R": str(tmp_path / "runs"), "EXTRA": "", "PY": "true"}
    r = subprocess.run(["bash", str(SCRIPT), *steps], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    used = set()
    lines = r.stdout.splitlines()
    assert len(lines) == 33, r.stdout
    for line in lines:
        _, params = _parse(shlex.split(line))
        _check_config(params)
        used.add(Path(params["config"]).name)
    assert used == {p.name for p in CONFIGS} - {"default.yaml"}
