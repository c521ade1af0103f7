"""Our own packages byte-compiled before a command starts many processes that import them.

Standard library only: ``keepwell run`` and the benchmarks call it first.
"""

from __future__ import annotations

from pathlib import Path


def compile_sources() -> None:
    """Byte-compile our own packages (the installed ones are compiled at install). Every
    child imports them; with PYTHONDONTWRITEBYTECODE set, as on many CI and container
    images, each would otherwise compile every module again at every start. Up-to-date
    files are skipped, so this costs little once done."""
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in ("keepwell", "services", "gateway", "migrations"):
        try:
            compileall.compile_dir(root / package, quiet=2, workers=1)
        except OSError:  # a read-only tree: the children compile in memory, as before
            return
