"""The metrics directory never hurts a request: its files' blocks exist before they are
written through the map (ENOSPC, not SIGBUS), and an unfit directory is named once."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from health_check.exceptions import ServiceWarning

from resilience import metricsdir
from resilience.health import MetricsDirectory


@contextlib.contextmanager
def tmpfs(path: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, f"mount needs root (CI runs as root): {done.stderr}"
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


WRITE_MANY_KEYS = textwrap.dedent(
    """
    import os, sys
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
    from resilience import metricsdir
    metricsdir.allocate_before_mapping()
    from prometheus_client import values
    from prometheus_client.mmap_dict import MmapedDict
    path = os.path.join(sys.argv[1], "counter_1.db")
    try:
        table = values.MmapedDict(path)
        for n in range(int(sys.argv[2])):
            table.write_value(f"key-{n}-" + "x" * 60, float(n), 0.0)
    except OSError as exc:
        print("OSError", exc.errno)
        sys.exit(0)
    table.close()
    print("wrote", len(list(MmapedDict(path, read_mode=True).read_all_values())))
    """
)


def write_keys(directory: Path, count: int) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", WRITE_MANY_KEYS, str(directory), str(count)]
    return subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parents[2])


def test_a_file_that_grows_is_allocated_as_it_grows(tmp_path):
    done = write_keys(tmp_path, 5000)  # about 450 KiB of keys: the file doubles three times
    assert done.stdout.split() == ["wrote", "5000"], done.stderr
    stats = (tmp_path / "counter_1.db").stat()
    assert stats.st_size >= 5000 * 88
    assert stats.st_blocks * 512 >= stats.st_size, "blocks missing behind the mapped file"


@pytest.mark.parametrize("keys", [1, 5000])
def test_on_a_full_disk_a_metrics_file_fails_with_enospc_not_sigbus(tmp_path, keys):
    with tmpfs(tmp_path / "full", "128k") as full:
        if keys > 1:
            (full / "ballast").write_bytes(b"\0" * 64 * 1024)  # room for the first 64 KiB only
        else:
            (full / "ballast").write_bytes(b"\0" * 128 * 1024)
        done = write_keys(full, keys)
    assert done.returncode == 0, f"the writer died: {done.returncode} {done.stderr[-500:]}"
    assert done.stdout.split() == ["OSError", "28"]


def test_each_unfit_directory_is_named(tmp_path):
    assert metricsdir.problem(str(tmp_path / "nowhere")).endswith(
        "does not exist (PROMETHEUS_MULTIPROC_DIR)"
    )
    with tmpfs(tmp_path / "ro", "128k", read_only=True) as read_only:
        assert "read-only filesystem" in metricsdir.problem(str(read_only))
    with tmpfs(tmp_path / "small", "512k") as small:
        assert "bytes free, under 1048576" in metricsdir.problem(str(small))
    assert metricsdir.problem(str(tmp_path)) is None


def test_dropping_is_said_once_and_the_health_check_warns(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(metricsdir, "_dropped", {})
    MetricsDirectory().run()  # fit, nothing dropped: no warning
    with caplog.at_level("WARNING", logger="resilience.metrics"):
        metricsdir.drop("a metrics file could not be written", OSError(28, "No space left"))
        metricsdir.drop("again")
    lines = [json.loads(r.getMessage()) for r in caplog.records]
    assert [line["event_type"] for line in lines] == ["resilience.metrics.dropped"]
    assert lines[0]["data"]["error"].endswith("[Errno 28] No space left")
    with pytest.raises(ServiceWarning, match="metrics are dropped: a metrics file could not"):
        MetricsDirectory().run()
