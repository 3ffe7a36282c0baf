"""Process-level CPU performance settings, applied only when called (never at import).

OpenMP threads that wait (``passive_omp_wait``). torch runs its CPU kernels on an OpenMP thread
pool; GNU OpenMP's default lets a thread that reaches the end of a parallel region *spin* for a
while before it sleeps. On a machine whose cores are busy with other work (a search's other
trials, another user) a spinning thread takes a core from the thread everybody is waiting for,
and every parallel region waits for its slowest, descheduled thread. Measured on the 2-core
machine of this project with a load average of 11: a training step of ``mlp_spe_micro`` (batch
50) took 14.9 s with 2 spinning threads, 1.14 s with 1 thread, and 0.24 s with 2 threads that
sleep (``OMP_WAIT_POLICY=PASSIVE``); that is why ``snn-nas retrain`` was several times slower per
image than a 1-thread search trial. The policy is read when the OpenMP runtime starts (when
torch is imported), so it is set by the command line before anything imports torch.

On Linux, glibc's ``malloc`` serves allocations above a (dynamic) threshold with fresh ``mmap``
pages and returns freed memory at the top of the heap to the OS once it exceeds the trim
threshold. A training step allocates and frees many activation tensors of a few MB; with the
defaults each of them is page-faulted in again on every step (measured: about 1,000 minor
faults, several ms, per 3 MB tensor in this VM), which can cost more than the arithmetic.
``tune_cpu_allocator`` keeps such blocks in the heap so that they are reused.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MAX_MMAP_THRESHOLD = 32 << 20  # glibc's ceiling on 64-bit systems


def tune_cpu_allocator(mmap_threshold: int = _MAX_MMAP_THRESHOLD, trim_threshold: int = 1 << 30) -> bool:
    """Ask glibc to serve blocks up to ``mmap_threshold`` bytes from the heap and to keep up to
    ``trim_threshold`` bytes of free heap. Affects the whole process (more resident memory,
    far fewer page faults). Returns True if applied, False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, int(min(mmap_threshold, _MAX_MMAP_THRESHOLD)))
    ok &= mallopt(_M_TRIM_THRESHOLD, int(min(trim_threshold, 2**31 - 1)))
    return bool(ok)


OMP_WAIT_ENV = "OMP_WAIT_POLICY"


def passive_omp_wait() -> bool:
    """Let idle OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``), unless the
    user set the variable. Takes effect only before torch is imported (returns whether it did);
    child processes (Ray workers) inherit it."""
    if OMP_WAIT_ENV in os.environ:
        return False
    os.environ[OMP_WAIT_ENV] = "PASSIVE"
    return "torch" not in sys.modules
