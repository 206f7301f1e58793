"""CPU facts the model backend needs: how many threads to run and whether the CPU has AMX.

llama.cpp decodes fastest with one thread per *physical* core (hyper-threads share the core's
vector units and only add contention), never more threads than the process may run on.

AMX (Intel Advanced Matrix Extensions, ``amx_tile`` in ``/proc/cpuinfo``) matters because a
native build of llama-cpp-python 0.3.36 on an AMX CPU repacks weights into AMX buffers and
then segfaults in ``ggml_backend_amx_mul_mat`` on the first decode. Loading the model with
``use_extra_bufts=False`` (no repacked "extra" buffer types) avoids that code path; the backend
does so automatically when :func:`has_amx` is true.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

__all__ = ["available_cpus", "cpu_flags", "has_amx", "physical_cores"]

_CPUINFO = Path("/proc/cpuinfo")


def _read_cpuinfo() -> str | None:
    try:
        return _CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def available_cpus() -> int:
    """Logical CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except OSError:
            pass
    return max(1, os.cpu_count() or 1)


def physical_cores(cpuinfo: str | None = None) -> int:
    """Number of physical cores usable by this process.

    Counts distinct ``(physical id, core id)`` pairs in ``/proc/cpuinfo`` (Linux). Where those
    fields are missing (other systems, some ARM kernels) falls back to the logical CPU count.
    Never returns more than :func:`available_cpus`, so a container limited to 2 CPUs on a
    64-core host gets 2.

    Args:
        cpuinfo: text of ``/proc/cpuinfo``; read from the system when ``None`` (tests pass
            fixture text).
    """
    text = _read_cpuinfo() if cpuinfo is None else cpuinfo
    cores: set[tuple[str, str]] = set()
    if text:
        for block in text.split("\n\n"):
            fields = _fields(block)
            if "core id" in fields:
                cores.add((fields.get("physical id", "0"), fields["core id"]))
    if cpuinfo is not None:
        return len(cores) or max(1, os.cpu_count() or 1)
    limit = available_cpus()
    return min(len(cores), limit) if cores else limit


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The ``flags`` of the first CPU in ``/proc/cpuinfo`` (empty when unavailable)."""
    text = _read_cpuinfo() if cpuinfo is None else cpuinfo
    if not text:
        return frozenset()
    for block in text.split("\n\n"):
        flags = _fields(block).get("flags")
        if flags is not None:
            return frozenset(flags.split())
    return frozenset()


def has_amx(cpuinfo: str | None = None) -> bool:
    """Whether the CPU may have Intel AMX, erring towards ``True`` when it cannot tell.

    On Linux the answer comes from the ``amx_tile`` flag. Elsewhere: macOS and non-x86
    machines have no x86 AMX; an AMD x86 CPU has none; any other x86 CPU whose flags cannot be
    read is assumed to have it, because the cost of a wrong ``True`` is some speed, while a
    wrong ``False`` is a crash.

    Args:
        cpuinfo: text of ``/proc/cpuinfo``; read from the system when ``None``.
    """
    if cpuinfo is not None or sys.platform.startswith("linux"):
        flags = cpu_flags(cpuinfo)
        if flags:
            return "amx_tile" in flags
    if sys.platform == "darwin":
        return False
    machine = platform.machine().lower()
    if machine not in {"x86_64", "amd64", "i386", "i686", "x86"}:
        return False
    # Windows reports e.g. "AMD64 Family 25 Model 33 Stepping 2, AuthenticAMD".
    return "authenticamd" not in platform.processor().lower()


def _fields(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in block.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields
