"""``explorer`` imports without Streamlit, except its ``widgets`` sub-package (the one part that draws)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import explorer

REPO = Path(__file__).resolve().parent.parent


def _modules_without_streamlit() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(explorer.__path__, prefix="explorer.")
        if not info.name.startswith("explorer.widgets")
    )


def test_every_explorer_module_but_the_widgets_imports_without_streamlit():
    modules = _modules_without_streamlit()
    assert "explorer.space_registry" in modules and "explorer.facts" in modules  # the walk found them
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    assert 'streamlit' not in sys.modules, f'importing {name} imported streamlit'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
