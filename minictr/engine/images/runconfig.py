"""What an image's config gives its containers beyond the command: the user, and settings to remember.

The image config's ``config`` object (OCI image spec, "Properties") carries
``User``, ``Env``, ``Entrypoint``, ``Cmd``, ``WorkingDir``, ``ExposedPorts``,
``Volumes``, ``StopSignal`` and ``Labels``. The command, environment and
working directory go into the runtime spec (see ``container.py``); this
module resolves the user and keeps the rest for the commands that need it
later (``stop`` sends StopSignal; published ports and volumes use the others).

``User`` is resolved as Docker does, through the *image's* ``/etc/passwd``
and ``/etc/group``, never the host's:

- ``name`` or ``uid``: that user, its primary group from passwd, and every
  group in ``/etc/group`` that lists the name as a member;
- ``user:group``: either part a name or a number; no supplementary groups;
- a number absent from passwd is allowed (gid 0 then); a name absent is an error.

The same passwd entry gives the process its ``HOME`` (its sixth field), as
Docker sets it when neither the image's ``Env`` nor ``-e`` does: ``/root``
for root without an entry, ``/`` for any other user without one.
"""

from __future__ import annotations

from minictr.errors import UsageError

TYPE_CHECKING = False  # typing is for checkers; the container start path does without it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: Image settings copied into a container's state.json, as Docker keeps them in ``Config``.
RECORDED = ("ExposedPorts", "Volumes", "StopSignal", "Labels", "User", "WorkingDir", "Healthcheck")


def _table(text: bytes | None, fields: int) -> list[list[str]]:
    rows = []
    for line in (text or b"").decode("utf-8", "replace").splitlines():
        if line.strip() and not line.startswith("#"):
            parts = line.split(":")
            if len(parts) >= fields:
                rows.append(parts)
    return rows


def resolve_user(user: str, read_file: Callable[[str], bytes | None]) -> tuple[int, int, list[int], str]:
    """``User`` -> (uid, gid, supplementary gids, home), from ``read_file('etc/passwd')`` and ``etc/group``.

    An empty ``user`` is root. passwd is read once; /etc/group only when it matters.
    """
    name, _, group = (user.strip() or "0").partition(":")
    passwd = _table(read_file("etc/passwd"), 7)
    entry = next((row for row in passwd if row[0] == name or (name.isdigit() and row[2] == name)), None)
    if entry is None and not name.isdigit():
        raise UsageError(f"user {name!r}: no such user in the image's /etc/passwd (use a number, or uid:gid)")
    uid = int(entry[2]) if entry is not None and not name.isdigit() else int(name)
    home = entry[5] if entry and entry[5] else ("/root" if uid == 0 else "/")
    if not user.strip():
        return 0, 0, [], home
    groups = _table(read_file("etc/group"), 4)
    if group:
        match = next((row for row in groups if row[0] == group or (group.isdigit() and row[2] == group)), None)
        if match is None and not group.isdigit():
            raise UsageError(f"group {group!r}: no such group in the image's /etc/group (use a number)")
        gid = int(match[2]) if match is not None and not group.isdigit() else int(group)
        return uid, gid, [], home
    gid = int(entry[3]) if entry and entry[3].isdigit() else 0
    login = entry[0] if entry else ""
    extra = sorted({int(row[2]) for row in groups if login and login in row[3].split(",") and row[2].isdigit()} - {gid})
    return uid, gid, extra, home


def recorded(config: dict[str, Any]) -> dict[str, Any]:
    """The image settings a container's state keeps (only those the image sets)."""
    return {key: config[key] for key in RECORDED if config.get(key)}
