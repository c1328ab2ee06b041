"""How much memory the machine can still give: what the memory guard and the array checks weigh against."""

from __future__ import annotations

import os

GIB = 1024 ** 3


def available_bytes() -> int | None:
    """Memory the system can still give (MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
