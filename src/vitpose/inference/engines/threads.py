"""How many threads an engine should use: what the machine really has free for this process.

`default_threads` is the default of ``--threads``: the CPUs this process may run on (its
affinity mask, e.g. ``taskset`` or a container's cpuset), capped by the container's CPU quota
(cgroup v2 ``cpu.max``, or v1 ``cpu.cfs_quota_us / cpu.cfs_period_us``), minus the cores other
processes keep busy, at least 1. The busy share comes from the 1-minute load average, less this
process's own running threads, over all the machine's CPUs (the load average counts the whole
machine, also inside a container): on 2 CPUs with a load of 1, one is taken.
An oversubscribed core costs far more than an idle one: a two-thread matrix product waits for its
slower thread at every layer, so on a machine where another process holds one of two cores one
thread is several times faster than two.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["cgroup_cpu_quota", "default_threads", "usable_cpus"]


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask; the core count where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cgroup_cpu_quota(root: str | os.PathLike = "/sys/fs/cgroup") -> float | None:
    """The container's CPU quota in CPUs (``2.5`` = two and a half CPUs' time), None when
    unlimited or unknown. Reads cgroup v2 ``cpu.max``, then v1 ``cpu.cfs_quota_us``."""
    root = Path(root)
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max" and float(period) > 0:
            return float(quota) / float(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = float((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = float((root / "cpu" / "cpu.cfs_period_us").read_text())
        if quota_us > 0 and period_us > 0:
            return quota_us / period_us
    except (OSError, ValueError):
        pass
    return None


def _own_running_threads() -> int:
    """Threads of this process that are running now (counted in the load average)."""
    try:
        tasks = Path("/proc/self/task")
        n = 0
        for t in tasks.iterdir():
            try:
                if (t / "stat").read_text().rsplit(")", 1)[1].split()[0] == "R":
                    n += 1
            except (OSError, IndexError):
                continue
        return n
    except OSError:
        return 1


def default_threads(*, cpus: int | None = None, quota: float | None | bool = False,
                    load: float | None | bool = False, own: int | None = None,
                    total: int | None = None) -> int:
    """The thread count an engine should use by default on this machine, now.

    ``n = min(usable CPUs, cgroup quota rounded down (at least 1))``, less
    ``round(n * min(1, (load - own) / total))``, at least 1: the load is the 1-minute load
    average (runnable processes of the whole machine), `own` the threads of this process running
    now, `total` the machine's CPUs. Each argument replaces what the function would read (tests
    inject them): `cpus` the affinity count, `quota` the cgroup quota (None: none), `load` the
    load average (None: unknown, taken as idle), `own` this process's runners, `total` the
    machine's CPU count.
    """
    n = usable_cpus() if cpus is None else max(1, int(cpus))
    q = cgroup_cpu_quota() if quota is False else quota
    if q is not None:
        n = min(n, max(1, math.floor(q)))
    if load is False:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = None
    if load is not None:
        mine = _own_running_threads() if own is None else own
        machine = max(1, total or os.cpu_count() or n)
        share = min(1.0, max(0.0, float(load) - mine) / machine)
        n = max(1, n - round(n * share))
    return max(1, n)
