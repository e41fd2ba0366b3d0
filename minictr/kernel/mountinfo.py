"""The mount table of this process's mount namespace, as /proc/self/mountinfo gives it (proc(5)).

Read by the cgroup layout detection (which hierarchies are mounted where) and
by ``minictr doctor`` (the propagation of ``/``).
"""

from __future__ import annotations

import re
from collections import namedtuple

MOUNTINFO = "/proc/self/mountinfo"


#: One line of mountinfo: where, its propagation tags (shared:N, master:N, unbindable), the
#: filesystem type and its super options. (collections, not typing: the start path reads this.)
Mount = namedtuple("Mount", ["mount_point", "optional", "fstype", "super_options"])


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as \ooo octal escapes
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def read_mountinfo(path: str = MOUNTINFO) -> list[Mount]:
    """Parse mountinfo (proc(5)): fields, optional fields, "-", fstype, source, super options."""
    mounts = []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            left, sep, right = line.rstrip("\n").partition(" - ")
            fields, tail = left.split(" "), right.split(" ")
            if not sep or len(fields) < 6 or len(tail) < 3:
                continue  # a malformed line is skipped, not fatal
            mounts.append(Mount(_unescape(fields[4]), tuple(fields[6:]), tail[0], tuple(tail[2].split(","))))
    return mounts
