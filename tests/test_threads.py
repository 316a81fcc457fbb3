"""The thread cap: cores from affinity and cgroup quotas (fixture cgroup trees), and what the cap reaches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from musimilar import threads
from musimilar.settings import load_settings


def cgroup_v2(tmp_path: Path, quotas: dict[str, str]) -> tuple[Path, Path]:
    """A unified hierarchy where the process sits in /app/job; `quotas` maps a cgroup path to its cpu.max."""
    root = tmp_path / "cgroup"
    (root / "app" / "job").mkdir(parents=True)
    for path, text in quotas.items():
        (root / path.strip("/") / "cpu.max").write_text(text + "\n")
    membership = tmp_path / "self-cgroup"
    membership.write_text("0::/app/job\n")
    return root, membership


def test_v2_quota_of_the_process_cgroup(tmp_path: Path) -> None:
    root, membership = cgroup_v2(tmp_path, {"app/job": "150000 100000"})
    assert threads.cgroup_cpu_quota(root, membership) == 1.5
    assert threads.available_cores(root, membership) == min(2, len(os.sched_getaffinity(0)))


def test_v2_a_parent_quota_binds_and_max_means_none(tmp_path: Path) -> None:
    root, membership = cgroup_v2(tmp_path, {"app/job": "max 100000", "app": "100000 100000", "": "max 100000"})
    assert threads.cgroup_cpu_quota(root, membership) == 1.0
    assert threads.available_cores(root, membership) == 1
    root, membership = cgroup_v2(tmp_path / "unlimited", {"app/job": "max 100000"})
    assert threads.cgroup_cpu_quota(root, membership) is None
    assert threads.available_cores(root, membership) == len(os.sched_getaffinity(0))


def test_v1_cfs_quota(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    job = root / "cpu,cpuacct" / "docker" / "abc"
    job.mkdir(parents=True)
    (job / "cpu.cfs_quota_us").write_text("50000\n")
    (job / "cpu.cfs_period_us").write_text("100000\n")
    membership = tmp_path / "self-cgroup"
    membership.write_text("4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    assert threads.cgroup_cpu_quota(root, membership) == 0.5
    assert threads.available_cores(root, membership) == 1  # rounded up: never zero
    (job / "cpu.cfs_quota_us").write_text("-1\n")
    assert threads.cgroup_cpu_quota(root, membership) is None


def test_no_cgroup_information_means_the_affinity(tmp_path: Path) -> None:
    assert threads.cgroup_cpu_quota(tmp_path, tmp_path / "absent") is None
    assert threads.available_cores(tmp_path, tmp_path / "absent") == len(os.sched_getaffinity(0))


def test_settings_key_environment_and_short_variable() -> None:
    assert load_settings(environ={}).system.threads is None
    assert load_settings(environ={"MUSIMILAR_THREADS": "3"}).system.threads == 3
    assert load_settings(environ={"MUSIMILAR_SYSTEM_THREADS": "2"}).system.threads == 2
    assert load_settings(environ={}, flags={"system.threads": 1}).system.threads == 1


def test_the_cap_reaches_torch_blas_children_and_pools() -> None:
    """In a fresh process (torch accepts its inter-op thread count once): every pool obeys the cap."""
    script = """
import os, numpy, torch
from musimilar import threads
threads.apply_thread_limit(1)
from threadpoolctl import threadpool_info
assert torch.get_num_threads() == 1 and torch.get_num_interop_threads() == 1
assert all(pool["num_threads"] == 1 for pool in threadpool_info()), threadpool_info()
assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["OPENBLAS_NUM_THREADS"] == "1"
assert threads.capped_workers(None) == 1 and threads.capped_workers(8) == 1
print("capped")
"""
    pytest.importorskip("threadpoolctl")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "capped" in completed.stdout


def test_a_cap_applied_before_torch_is_loaded_reaches_it_when_a_device_is_picked() -> None:
    script = """
import sys
from musimilar import threads
threads.apply_thread_limit(1)
assert "torch" not in sys.modules
from musimilar.devices import pick_device
import torch
pick_device("cpu")
assert torch.get_num_threads() == 1 and torch.get_num_interop_threads() == 1
print("capped")
"""
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "capped" in completed.stdout


def test_worker_pools_default_to_the_available_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "_applied", [])
    monkeypatch.setattr(threads, "available_cores", lambda: 3)
    assert threads.thread_limit() == 3
    assert threads.capped_workers(None) == 3
    assert threads.capped_workers(2) == 2
    assert threads.capped_workers(16) == 3
