"""How many cores musimilar may use: one cap for torch, BLAS and the worker pools of convert, embed and train.

Small NAS boxes and single-board computers lock up when every library starts one thread per core, and a
container limited to 2 CPUs still sees all of the host's cores in `os.cpu_count()`. The default is the cores this
process may really use: its CPU affinity, lowered by a cgroup CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

# Read by OpenMP, OpenBLAS, MKL and numexpr when they start: worker processes and libraries loaded later obey them.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")

_applied: list[int] = []  # the cap set by apply_thread_limit in this process, if any


def available_cores(cgroup_root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """The cores this process may use: its affinity, capped by the cgroup CPU quota (rounded up) when one is set."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root, proc_self_cgroup)
    return max(1, min(cores, math.ceil(quota))) if quota else max(1, cores)


def cgroup_cpu_quota(cgroup_root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP) -> float | None:
    """CPUs' worth of time the process's cgroup (or a parent's) allows per period, or None without a quota."""
    try:
        lines = proc_self_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: one unified hierarchy
            quotas += _quotas_along(cgroup_root, path, _v2_quota)
        elif "cpu" in controllers.split(","):  # cgroup v1: the cpu controller's hierarchy
            mounts = [cgroup_root / name for name in (controllers, "cpu,cpuacct", "cpu")]
            mount = next((folder for folder in mounts if folder.is_dir()), None)
            if mount is not None:
                quotas += _quotas_along(mount, path, _v1_quota)
    return min(quotas) if quotas else None


def _quotas_along(mount: Path, path: str, read_quota) -> list[float]:
    """Quotas of the cgroup and each of its parents up to the mount point (a parent's limit binds its children)."""
    quotas = []
    folder = mount / path.strip("/")
    while True:
        quota = read_quota(folder)
        if quota is not None:
            quotas.append(quota)
        if folder == mount or mount not in folder.parents:
            return quotas
        folder = folder.parent


def _v2_quota(folder: Path) -> float | None:
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _v1_quota(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def thread_limit() -> int:
    """The cap in force: the one applied in this process, else the available cores."""
    return _applied[-1] if _applied else available_cores()


def capped_workers(requested: int | None) -> int:
    """A worker pool's size: `requested` (default: the cap), never above the cap."""
    return max(1, min(requested or thread_limit(), thread_limit()))


def apply_thread_limit(limit: int | None) -> int:
    """Cap torch's intra- and inter-op threads, BLAS pools and the variables child processes inherit; returns the cap.

    `limit` None means the available cores. Torch is capped now if it is loaded, else by `limit_torch_threads` when
    a device is picked (so commands that never need torch, `info` say, never import it). Call before the heavy work
    starts: torch accepts its inter-op thread count only once, before it runs anything in parallel.
    """
    limit = limit or available_cores()
    for name in THREAD_VARIABLES:
        os.environ[name] = str(limit)
    _applied.append(limit)
    if "torch" in sys.modules:
        limit_torch_threads()
    _limit_loaded_blas(limit)
    return limit


def limit_torch_threads() -> None:
    """Apply the cap in force, if one was applied, to torch (imported here if it is not yet)."""
    if not _applied:
        return
    import torch

    torch.set_num_threads(_applied[-1])
    try:
        torch.set_num_interop_threads(_applied[-1])
    except RuntimeError:  # already set, or inter-op work already ran: the intra-op cap above still holds
        pass


def _limit_loaded_blas(limit: int) -> None:
    """BLAS libraries already loaded (numpy's OpenBLAS) read the variables only at start: tell them directly."""
    try:
        from threadpoolctl import threadpool_limits  # optional: installed with scikit-learn
    except ImportError:
        return
    threadpool_limits(limits=limit)
