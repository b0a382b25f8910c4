"""What the benchmark scripts share: one run of a child process, timed, with its peak memory.

Peak RSS comes from wait4() (ru_maxrss) of the child: resident pages of the process only (the
page cache holding a model file is not counted, as it is not the child's memory).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def models_dir() -> Path:
    """The model cache: $PARALLAX_MODELS or ~/.cache/parallax/models."""
    return Path(os.environ.get("PARALLAX_MODELS", Path.home() / ".cache/parallax/models"))


def run(cmd: list[str]) -> tuple[float, int, float]:
    """Runs `cmd` to its end: wall seconds, peak RSS in bytes and CPU seconds (user + system).
    Exit code 1 is a verdict (a contract failed), not a crash; any other failure ends the script."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):  # 1 = a contract failed: a verdict, not a crash
        raise SystemExit(f"{' '.join(cmd)} exited with {code}:\n{err.decode(errors='replace')[-2000:]}")
    return time.perf_counter() - t0, ru.ru_maxrss * 1024, ru.ru_utime + ru.ru_stime
