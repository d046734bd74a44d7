"""The memory a container allows: a cgroup's limit caps what a scene file may make a reader allocate."""

from __future__ import annotations

from pathlib import Path

from ssc_edge.io.limits import available_memory, cgroup_memory_headroom


def _tree(tmp_path: Path, membership: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "cgroup.proc").write_text(membership)
    return root, tmp_path / "cgroup.proc"


def test_cgroup_v2_limit_less_usage(tmp_path):
    root, proc = _tree(
        tmp_path, "0::/pod/ssc\n", {"pod/ssc/memory.max": "4294967296\n", "pod/ssc/memory.current": "1073741824\n"}
    )
    assert cgroup_memory_headroom(root, proc) == 3 * 1024**3


def test_cgroup_v2_inside_a_container_reads_the_mount_root(tmp_path):
    """The group named in /proc/self/cgroup is the host's path; the container sees its own group at the root."""
    root, proc = _tree(
        tmp_path, "0::/kubepods/burstable/pod1/abc\n", {"memory.max": "2000\n", "memory.current": "500\n"}
    )
    assert cgroup_memory_headroom(root, proc) == 1500


def test_cgroup_v1_memory_controller(tmp_path):
    membership = "5:cpu,cpuacct:/x\n4:memory:/docker/abc\n0::/\n"
    files = {"memory/docker/abc/memory.limit_in_bytes": "1000\n", "memory/docker/abc/memory.usage_in_bytes": "1200\n"}
    root, proc = _tree(tmp_path, membership, files)
    assert cgroup_memory_headroom(root, proc) == 0  # over its limit: nothing left, never negative


def test_no_limit_or_no_cgroup_is_none(tmp_path):
    root, proc = _tree(tmp_path, "0::/\n", {"memory.max": "max\n", "memory.current": "5\n"})
    assert cgroup_memory_headroom(root, proc) is None
    unlimited = {"memory/memory.limit_in_bytes": "9223372036854771712\n", "memory/memory.usage_in_bytes": "5\n"}
    root, proc = _tree(tmp_path / "v1", "4:memory:/\n", unlimited)
    assert cgroup_memory_headroom(root, proc) is None
    assert cgroup_memory_headroom(tmp_path / "none", tmp_path / "missing") is None
    root, proc = _tree(tmp_path / "bad", "0::/\n", {"memory.max": "lots\n", "memory.current": "5\n"})
    assert cgroup_memory_headroom(root, proc) is None


def test_available_memory_is_capped_by_the_cgroup(monkeypatch):
    """A container allowing 12345 bytes more: that is what a reader may allocate, whatever the host has free."""
    from ssc_edge.io import limits

    monkeypatch.setattr(limits, "cgroup_memory_headroom", lambda: 12345)
    assert available_memory() == 12345
