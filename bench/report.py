"""Shared by the benchmarks: describe the machine and write a section of BENCHMARKS.md.

Each benchmark owns one section between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``
and replaces only that, so benchmarks can be re-run one at a time.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = """# Benchmarks

Every figure here was written by a script in `bench/` (named in each section), on the
machine it names. Re-run a script to refresh its section; timings are never asserted in
tests.
"""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    cpu = cpu_model()
    try:
        import torch

        torch_version = f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        torch_version = ""
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}{torch_version}"


def today() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def write_section(name: str, markdown: str, path: Path = BENCHMARKS) -> None:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(path)  # atomic: an interrupted bench never leaves half a file
