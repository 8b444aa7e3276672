"""The benchmarks still import: a refactoring elsewhere must not break them silently.

They run for minutes and are not part of the suite; importing each in a fresh
interpreter (as ``python benchmarks/<name>.py`` would, without calling its
``main``) catches a name that moved or a module that is gone in a second.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py"))


def test_every_benchmark_is_listed_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [s for s in SCRIPTS if s != "demo_site" and f"benchmarks/{s}.py" not in readme]
    assert not missing, f"add these to the README's Benchmarks section: {missing}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_benchmark_imports(script):
    code = f"import sys; sys.path.insert(0, 'benchmarks'); import {script}"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
