"""05 · user namespace: rootless minictr from a root notebook.

The exercise, ``new_user``, is a step of the runtime: :mod:`.step_exercises`.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys

from minictr.tutorial.common import HostLacks, leftovers, package_parent, remove_tree, run_shown, workdir
from minictr.tutorial.processes import alive, stat_fields, wait_until


class RootlessUser:
    """minictr as an unprivileged user (``nobody``, uid 65534 by default): rootless containers from a root notebook.

    That user cannot read this kernel's Python environment (it may live in a
    private home), so ``home`` gets a copy of the minictr package and state
    and data roots that the user owns; minictr runs there with a Python the
    user can run, under ``setpriv``. :meth:`clean` kills what is left and
    removes ``home``.
    """

    def __init__(self, home: str, uid: int = 65534, gid: int = 65534) -> None:
        self.home, self.uid, self.gid = home, uid, gid
        self.state_root = os.path.join(home, "state")
        self.data_root = os.path.join(home, "data")
        self.library = os.path.join(home, "lib")
        setpriv = shutil.which("setpriv")
        if not setpriv:
            raise HostLacks("The rootless cells need setpriv (util-linux) to run minictr as another user.")
        self.clean()
        for path in (self.home, self.library):
            os.makedirs(path, exist_ok=True)
            os.chmod(path, 0o755)
        tutorial_dir = os.path.dirname(workdir("-"))
        parent = os.path.dirname(self.home)
        while parent.startswith(tutorial_dir):  # the tutorial's own directories: let the user through
            os.chmod(parent, 0o755)
            parent = os.path.dirname(parent)
        while parent != os.path.dirname(parent):  # the others must let it through already
            if not os.stat(parent).st_mode & 0o001:
                raise HostLacks(f"The rootless cells need {parent} to be searchable by other users (chmod o+x).")
            parent = os.path.dirname(parent)
        shutil.copytree(
            os.path.join(package_parent(), "minictr"),
            os.path.join(self.library, "minictr"),
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        for directory, _, files in os.walk(self.library):
            os.chmod(directory, 0o755)
            for name in files:
                os.chmod(os.path.join(directory, name), 0o644)
        for path in (self.state_root, self.data_root):
            os.makedirs(path)
            os.chown(path, uid, gid)
        self.prefix = [
            setpriv,
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            "env",
            "-i",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"HOME={self.data_root}",
            "LC_ALL=C.UTF-8",
            f"PYTHONPATH={self.library}",
            f"MINICTR_ROOT={self.state_root}",
            f"MINICTR_DATA_ROOT={self.data_root}",
        ]
        self.python = self._find_python()
        try:
            import pwd

            self.name = pwd.getpwuid(uid).pw_name
        except KeyError:
            self.name = f"uid {uid}"

    def _find_python(self) -> str:
        """A Python >= 3.11 this user can run, and from which it can import the copied package."""
        candidates = [sys.executable, "/usr/bin/python3", "/usr/local/bin/python3", shutil.which("python3") or ""]
        for python in dict.fromkeys(c for c in candidates if c):
            test = [*self.prefix, python, "-c", "import sys, minictr; sys.exit(sys.version_info < (3, 11))"]
            if subprocess.run(test, capture_output=True, timeout=30).returncode == 0:
                return python
        raise HostLacks(
            f"The rootless cells need a Python 3.11 or newer that uid {self.uid} can run "
            f"(tried {', '.join(dict.fromkeys(c for c in candidates if c))})."
        )

    def minictr(self, *args: str, timeout: float = 120) -> None:
        """Run ``minictr ARGS...`` as this user, and print what a terminal would show."""
        run_shown(
            f"{self.name}$ minictr " + shlex.join(args),
            [*self.prefix, self.python, "-m", "minictr.cli", *args],
            timeout,
        )

    def containers(self) -> list[str]:
        """The ids of this user's detached containers (those with a state in the user's state root)."""
        base = os.path.join(self.state_root, "containers")
        return sorted(
            name
            for name in (os.listdir(base) if os.path.isdir(base) else [])
            if os.path.exists(os.path.join(base, name, "state.json"))
        )

    def pid_of(self, container_id: str) -> int:
        """The host pid of PID 1 of one of this user's detached containers."""
        with open(os.path.join(self.state_root, "containers", container_id, "state.json")) as handle:
            return int(json.load(handle)["pid"])

    def clean(self, timeout: float = 10) -> list[str]:
        """Kill this user's containers that still run, remove ``home``; return what is left (empty: nothing)."""
        containers = os.path.join(self.state_root, "containers")
        for name in os.listdir(containers) if os.path.isdir(containers) else []:
            try:
                with open(os.path.join(containers, name, "state.json")) as handle:
                    state = json.load(handle)
                pid = int(state["pid"])
                if stat_fields(pid)[19] != state.get("start"):
                    continue  # that pid is another process now
                os.kill(pid, signal.SIGKILL)
                wait_until(functools.partial(_ended, pid), timeout, f"the end of container {name}")
            except (OSError, ValueError, KeyError, IndexError):
                continue  # no state, or the container is gone already
        remove_tree(self.home)
        return leftovers(self.home)


def _ended(pid: int) -> bool:
    """True once ``pid`` has ended (a zombie has)."""
    return not alive(pid)


SOLUTIONS: dict[str, str] = {}  # the exercise, new_user(write_maps), is a step: minictr.tutorial.step_exercises
