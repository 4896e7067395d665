"""Shared by the benchmarks: describe the machine and write a section of BENCHMARKS.md.

Each benchmark owns one section between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``
and replaces only that, so benchmarks can be re-run one at a time.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

from pretrain.clock import utc_now
from pretrain.devices import cpu_model
from pretrain.files import atomic_write_text

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = """# Benchmarks

Every figure here was written by a script in `bench/` (named in each section; one section
says it was measured by hand), on the machine it names. Re-run a script to refresh its section; timings are never asserted in
tests.
"""


def machine_description() -> str:
    cpu = cpu_model()
    try:
        import torch

        torch_version = f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        torch_version = ""
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}{torch_version}"


def today() -> str:
    """When a section was measured, for people reading BENCHMARKS.md (minutes are enough)."""
    return f"{utc_now():%Y-%m-%d %H:%M} UTC"


def write_section(name: str, markdown: str, path: Path = BENCHMARKS) -> None:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    atomic_write_text(path, text)  # an interrupted bench never leaves half a file


def publish(name: str, markdown: str, write: bool = True, path: Path = BENCHMARKS) -> None:
    """Print a benchmark's section and, unless ``write`` is False (``--no-write``), put it in BENCHMARKS.md."""
    print(markdown)
    if write:
        write_section(name, markdown, path)
