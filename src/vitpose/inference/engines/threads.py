"""How many threads an engine should use: what the machine really has free for this process.

`default_threads` is the default of ``--threads``: the CPUs this process may run on (its
affinity mask, e.g. ``taskset`` or a container's cpuset), capped by the container's CPU quota
(cgroup v2 ``cpu.max``, or v1 ``cpu.cfs_quota_us / cpu.cfs_period_us``), minus the cores other
processes keep busy, at least 1. The busy share is measured now: the CPU time the whole machine
spent busy over a tenth of a second (``/proc/stat``), less this process's own, over all the
machine's CPUs (on 2 CPUs with one busy, one is taken). The 1-minute load average is only the
fallback where ``/proc/stat`` cannot be read: it lags, so right after a job ends it still counts
that job, and the next command would get one thread of two.
An oversubscribed core costs far more than an idle one: a two-thread matrix product waits for its
slower thread at every layer, so on a machine where another process holds one of two cores one
thread is several times faster than two.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

__all__ = ["busy_cpus_now", "cgroup_cpu_quota", "default_threads", "usable_cpus"]


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


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot, from ``/proc/stat``."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
        if fields[0] != "cpu":
            return None
        v = [float(x) for x in fields[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0.0)  # idle + iowait
        total = sum(v[:8])  # guest time is already in user
        tick = float(os.sysconf("SC_CLK_TCK"))
        return (total - idle) / tick, total / tick
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def busy_cpus_now(interval: float = 0.1) -> float | None:
    """CPUs the rest of the machine keeps busy now: the machine's busy CPU time over `interval`
    seconds less this process's own, divided by the interval; None where ``/proc/stat`` cannot
    be read."""
    a = _cpu_times()
    if a is None:
        return None
    own_a, t0 = _own_cpu_seconds(), time.monotonic()
    time.sleep(interval)
    b, own_b, t1 = _cpu_times(), _own_cpu_seconds(), time.monotonic()
    if b is None or t1 <= t0:
        return None
    busy = (b[0] - a[0]) - (own_b - own_a)
    return max(0.0, busy / (t1 - t0))


def default_threads(*, cpus: int | None = None, quota: float | None | bool = False,
                    load: float | None | bool = False, own: int | None = None,
                    total: int | None = None) -> int:
    """The thread count an engine should use by default on this machine, now.

    ``n = min(usable CPUs, cgroup quota rounded down (at least 1))``, less
    ``round(n * min(1, (load - own) / total))``, at least 1: the load is what the rest of the
    machine keeps busy now (`busy_cpus_now`, in CPUs; where it cannot be measured, the 1-minute
    load average less `own`, this process's running threads), `total` the machine's CPUs. Each
    argument replaces what the function would read (tests inject them): `cpus` the affinity
    count, `quota` the cgroup quota (None: none), `load` the load (None: unknown, taken as
    idle), `own` this process's share of it, `total` the machine's CPU count.
    """
    n = usable_cpus() if cpus is None else max(1, int(cpus))
    q = cgroup_cpu_quota() if quota is False else quota
    if q is not None:
        n = min(n, max(1, math.floor(q)))
    if load is False:
        load = busy_cpus_now()
        if load is not None:
            own = 0  # already left out
        else:
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
