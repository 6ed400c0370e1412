"""Whether llama-cpp-python imports, and what to install when it does not (no torch needed, so
`backend=auto` can ask cheaply)."""

from __future__ import annotations

from ..config import ConfigError


class LlamaCppUnavailable(ConfigError, RuntimeError):
    """llama-cpp-python is missing or does not import: an install to fix (or another backend to
    pick), not a bug in lmsi (the CLI prints it as one line, exit 2)."""


def llama_cpp_import_error() -> str | None:
    """None when `import llama_cpp` works, else one line saying what is missing and what to run.

    Being installed is not enough: a `pip install --no-deps llama-cpp-python` imports only once
    its dependencies (diskcache, jinja2, numpy, typing-extensions) are there too, and a build whose
    shared library is missing or broken fails inside the import. The messages hold no square
    brackets: the CLI prints errors through rich, whose markup would eat them."""
    try:
        import llama_cpp  # noqa: F401
    except Exception as e:  # ImportError, or OSError/RuntimeError when its shared library fails to load
        name = (getattr(e, "name", None) or "") if isinstance(e, ModuleNotFoundError) else ""
        if name == "llama_cpp":
            return "the llamacpp backend needs llama-cpp-python: ./scripts/setup.sh builds it (or pip install llama-cpp-python)"
        if name and name.split(".")[0] != "llama_cpp":  # a dependency it was installed without
            missing = name.split(".")[0]
            return (
                f"llama-cpp-python is installed but does not import: No module named {missing!r}; "
                f"pip install {missing.replace('_', '-')}"
            )
        detail = " ".join(f"{type(e).__name__}: {e}".split())[:300]
        return f"llama-cpp-python is installed but does not import ({detail}); rebuild it with ./scripts/setup.sh"
    return None
