"""Named volumes: directories minictr owns under the data root, mounted into containers, outliving them.

On disk, as Docker's ``local`` driver keeps them::

    <data-root>/volumes/<name>/volume.json    name, created, labels, anonymous or not
    <data-root>/volumes/<name>/_data/         the content containers see

A container gets volumes three ways (:func:`attach`):

- ``-v NAME:/path[:ro]`` or ``--mount type=volume,source=NAME,target=/path[,readonly]``:
  the named volume, created on first use;
- ``-v /path``, ``--mount type=volume,target=/path``, or a path the image's
  ``VOLUME`` lists that no other mount covers: an *anonymous* volume, named
  by 64 hex digits, removed with the container (as ``docker run --rm`` does);
- ``--mount type=bind,source=/host,target=/path`` and ``type=tmpfs`` are
  plain mounts, never copied into.

Docker's rule on first use: a volume that is empty gets a copy of what the
image has at the mount point (files, owners, modes), read from the image's
layers with their whiteouts. The volumes a container uses are written to its
state.json *before* anything is created, so ``volume rm`` can refuse a
volume a running container holds and nothing leaks after a ``kill -9``.

User namespaces, as Docker's ``userns-remap``: a volume belongs to the root
of the first container that uses it (``Owner`` in volume.json, the host uid
and gid of that root: 0 without a user namespace, 100000 with ``--userns
private``). That first use makes its directory, and what is copied from the
image (already shifted layers), that root's own, so a remapped root writes
to it as to its own files. A container whose root is another host uid may
mount it read-only, never read-write: its root would find the files owned
by ``nobody``, and what it wrote would be owned by a uid the first one
cannot change. Idmapped mounts (``mount_setattr(MOUNT_ATTR_IDMAP)``) could
show one volume to several mappings, but need the mount made in the
parent and moved into the container's mount namespace, which the runtime
does not do yet; a clear refusal beats files a container cannot change.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import stat

TYPE_CHECKING = False  # typing is for checkers; the container start path does without it
if TYPE_CHECKING:
    from typing import Any

    from minictr.engine.images.store import Image

from minictr import paths
from minictr.errors import UsageError

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


def volumes_root(data_root: str | None = None) -> str:
    """``<data-root>/volumes``."""
    return os.path.join(data_root or paths.data_root(), "volumes")


def create(name: str | None = None, *, labels: dict[str, str] | None = None, data_root: str | None = None,
           anonymous: bool = False) -> dict[str, Any]:  # fmt: skip
    """Create the volume ``name`` (a random one when None); an existing one is returned as it is."""
    name = name or os.urandom(32).hex()
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"volume name {name!r}: use letters, digits, _ . - (two characters at least, a letter or digit first)"
        )
    directory = os.path.join(volumes_root(data_root), name)
    if os.path.isdir(os.path.join(directory, "_data")):
        return inspect(name, data_root=data_root)
    os.makedirs(os.path.join(directory, "_data"), mode=0o755, exist_ok=True)
    os.chmod(os.path.dirname(directory), 0o711)  # a user-namespaced root must pass through to its volume
    created = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    info = {"Name": name, "Driver": "local", "Mountpoint": os.path.join(directory, "_data"), "CreatedAt": created,
            "Labels": labels or {}, "Anonymous": anonymous, "Owner": None}  # fmt: skip
    _write_info(info)
    return info


def inspect(name: str, *, data_root: str | None = None) -> dict[str, Any]:
    """The volume's description (``docker volume inspect``'s fields)."""
    try:
        with open(os.path.join(volumes_root(data_root), name, "volume.json")) as handle:
            info: dict[str, Any] = json.load(handle)
            return info
    except (OSError, ValueError):
        raise UsageError(f"no such volume: {name}") from None


def listing(*, data_root: str | None = None) -> list[dict[str, Any]]:
    """Every volume, by name."""
    root = volumes_root(data_root)
    names = sorted(os.listdir(root)) if os.path.isdir(root) else []
    found = []
    for name in names:
        try:
            found.append(inspect(name, data_root=data_root))
        except UsageError:
            continue  # half-created or half-removed
    return found


def users(name: str, *, data_root: str | None = None, state_root: str | None = None) -> list[str]:
    """The ids of the containers (under ``state_root``) that use the volume ``name``.

    Dead containers count until they are swept: the command line sweeps first
    (containers are the layer above volumes).
    """
    from minictr.runtime.state import read_state

    base = os.path.join(state_root or paths.state_root(), "containers")
    if not os.path.isdir(base):
        return []
    mountpoint = os.path.join(volumes_root(data_root), name, "_data")
    holding = []
    for entry in sorted(os.listdir(base)):
        state = read_state(os.path.join(base, entry))
        if any(v.get("path") == mountpoint for v in state.get("volumes", [])):
            holding.append(entry)
    return holding


def remove(name: str, *, force: bool = False, data_root: str | None = None, state_root: str | None = None) -> None:
    """Remove a volume and its content; refused while a container uses it (even with ``force``)."""
    inspect(name, data_root=data_root)
    holding = users(name, data_root=data_root, state_root=state_root)
    if holding:
        raise UsageError(f"volume {name} is in use by container {', '.join(holding)}: remove it first (minictr rm)")
    shutil.rmtree(os.path.join(volumes_root(data_root), name))


def prune(*, all_volumes: bool = False, data_root: str | None = None, state_root: str | None = None) -> list[str]:
    """Remove unused anonymous volumes (every unused volume with ``all_volumes``); return their names."""
    removed = []
    for info in listing(data_root=data_root):
        if (info.get("Anonymous") or all_volumes) and not users(
            info["Name"], data_root=data_root, state_root=state_root
        ):
            shutil.rmtree(os.path.join(volumes_root(data_root), info["Name"]), ignore_errors=True)
            removed.append(info["Name"])
    return removed


# --- a container's mounts ---------------------------------------------------------------------------


def parse_mount(text: str) -> dict[str, Any]:
    """``--mount type=volume|bind|tmpfs,source=…,target=…[,readonly]`` as a dict (type, source, target, readonly)."""
    fields: dict[str, Any] = {"type": "volume", "source": "", "target": "", "readonly": False}
    aliases = {"src": "source", "dst": "target", "destination": "target", "ro": "readonly"}
    for item in text.split(","):
        key, equals, value = item.partition("=")
        key = aliases.get(key.strip(), key.strip())
        if key == "readonly":
            fields["readonly"] = not equals or value.lower() in ("1", "true")
        elif key in ("type", "source", "target", "tmpfs-size", "tmpfs-mode", "volume-nocopy"):
            fields[key] = value
        else:
            raise UsageError(f"--mount {text!r}: unknown field {key!r}")
    if fields["type"] not in ("volume", "bind", "tmpfs") or not fields["target"].startswith("/"):
        raise UsageError(f"--mount {text!r}: give type=volume|bind|tmpfs and an absolute target=")
    if fields["type"] == "bind" and not fields["source"].startswith("/"):
        raise UsageError(f"--mount {text!r}: a bind mount needs an absolute source=")
    return fields


def _requests(volumes: list[str], mounts: list[str], image: Image) -> list[dict[str, Any]]:
    """Every mount asked for: -v, --mount, then the image's VOLUME paths nothing else covers."""
    wanted: list[dict[str, Any]] = []
    for text in volumes:
        parts = text.split(":")
        if len(parts) == 1 and parts[0].startswith("/"):
            wanted.append({"type": "volume", "source": "", "target": parts[0], "readonly": False})
        elif parts[0].startswith("/") or len(parts) not in (2, 3):
            wanted.append({"type": "bind-spec", "text": text, "target": parts[1] if len(parts) > 1 else ""})
        else:
            if len(parts) == 3 and parts[2] not in ("ro", "rw"):
                raise UsageError(f"-v {text!r}: the mode must be ro or rw, not {parts[2]!r}")
            wanted.append({"type": "volume", "source": parts[0], "target": parts[1], "readonly": parts[2:] == ["ro"]})
    wanted.extend(parse_mount(text) for text in mounts)
    covered = {os.path.normpath(w["target"]) for w in wanted}
    for path in sorted((image.config.get("config") or {}).get("Volumes") or {}):
        if os.path.normpath(path) not in covered:
            wanted.append({"type": "volume", "source": "", "target": path, "readonly": False})
    return wanted


def attach(
    directory: str, volumes: list[str], mounts: list[str], image: Image, lowers: list[str], data_root: str,
    owner: int = 0,
) -> tuple[list[str], list[dict[str, Any]]]:  # fmt: skip
    """Resolve a container's ``-v`` and ``--mount``: recorded in its state, created, claimed, filled.

    ``owner`` is the host uid (and gid) of the container's root: not 0 under
    a user namespace (see the module's notes on ownership). Returns ``-v
    HOST:CONTAINER`` binds (volumes become binds of their directories) and
    the tmpfs mounts as OCI mounts to add to the spec.
    """
    from minictr.runtime.state import read_state, update_state

    earlier = {r["target"]: r for r in read_state(directory).get("volumes", []) if r.get("anonymous")}
    binds, extra, records = [], [], []
    for want in _requests(volumes, mounts, image):
        if want["type"] == "bind-spec":
            binds.append(want["text"])
        elif want["type"] == "bind":
            binds.append(f"{want['source']}:{want['target']}{':ro' if want['readonly'] else ''}")
        elif want["type"] == "tmpfs":
            mode = want.get("tmpfs-mode") or "1777"
            size = [f"size={want['tmpfs-size']}"] if want.get("tmpfs-size") else []
            flags = ["nosuid", "nodev", f"mode={mode}", *size, *(["ro"] if want["readonly"] else [])]
            extra.append({"destination": want["target"], "type": "tmpfs", "source": "tmpfs", "options": flags})
        else:
            # an anonymous volume is the container's for life: a restart finds the one it had
            name = want["source"] or earlier.get(want["target"], {}).get("name") or os.urandom(32).hex()
            want.update(
                name=name, path=os.path.join(volumes_root(data_root), name, "_data"), anonymous=not want["source"]
            )
            records.append(want)
            binds.append(f"{want['path']}:{want['target']}{':ro' if want['readonly'] else ''}")
    if records:
        update_state(
            directory, {"volumes": [{k: r[k] for k in ("name", "path", "anonymous", "target")} for r in records]}
        )
    for record in records:
        create(record["name"], data_root=data_root, anonymous=record["anonymous"])
        _fill(record, lowers, owner, data_root)
    return binds, extra


def _fill(record: dict[str, Any], lowers: list[str], owner: int, data_root: str) -> None:
    """Claim the volume for ``owner`` on first use, refuse a writer of another mapping, copy the image in if empty.

    ``lowers`` are the container's layers, already shifted to ``owner``: what
    is copied from them is shifted too. The lock keeps two first users from
    claiming one volume at once.
    """
    from minictr.files import locked

    name, path = record["name"], record["path"]
    with locked(os.path.join(os.path.dirname(path), "lock")):
        info = inspect(name, data_root=data_root)
        empty = not os.listdir(path)
        if info.get("Owner") is None:
            # unclaimed: a new volume becomes this container's; content put there some other way keeps its owner
            info["Owner"] = owner if empty else os.stat(path).st_uid
            if empty and os.geteuid() == 0:
                os.chown(path, owner, owner)
            _write_info(info)
        if info["Owner"] != owner and not record["readonly"]:
            raise UsageError(
                f"volume {name} belongs to a root that is uid {info['Owner']} on the host, and this container's "
                f"root is uid {owner} (--userns, --uidmap): it could not write there; mount it read-only (:ro) or "
                "use a volume of its own"
            )
        if empty and info["Owner"] == owner and not record.get("volume-nocopy"):
            copy_up(lowers, record["target"], path)


def _write_info(info: dict[str, Any]) -> None:
    from minictr.files import write_atomic

    write_atomic(os.path.join(os.path.dirname(info["Mountpoint"]), "volume.json"), json.dumps(info, indent=2).encode())


def release(records: list[dict[str, Any]]) -> None:
    """Remove a finished container's anonymous volumes (named ones stay: their data outlives the container)."""
    for record in records:
        if record.get("anonymous") and record.get("path", "").endswith("/_data"):
            shutil.rmtree(os.path.dirname(record["path"]), ignore_errors=True)


def copy_up(lowers: list[str], target: str, dest: str) -> None:
    """Copy what the image (its layers, bottom first) holds at ``target`` into the empty directory ``dest``."""
    relative = target.strip("/")
    for layer in lowers:
        source = os.path.join(layer, relative)
        if not os.path.lexists(source):
            continue
        if not os.path.isdir(source) or os.path.islink(source) or _is_whiteout(source):
            _clear(dest)  # a file or a deletion replaces what lower layers had
            continue
        if _opaque(source):
            _clear(dest)
        _merge(source, dest)


def _merge(source: str, dest: str) -> None:
    info = os.lstat(source)
    os.chmod(dest, stat.S_IMODE(info.st_mode))
    os.lchown(dest, info.st_uid, info.st_gid)
    for name in os.listdir(source):
        path, target = os.path.join(source, name), os.path.join(dest, name)
        if _is_whiteout(path):
            _remove(target)
        elif os.path.isdir(path) and not os.path.islink(path):
            if not os.path.isdir(target) or os.path.islink(target) or _opaque(path):
                _remove(target)
                os.mkdir(target)
            _merge(path, target)
        else:
            _remove(target)
            if os.path.islink(path):
                os.symlink(os.readlink(path), target)
            else:
                shutil.copy2(path, target, follow_symlinks=False)
            os.lchown(target, os.lstat(path).st_uid, os.lstat(path).st_gid)


def _clear(directory: str) -> None:
    for name in os.listdir(directory):
        _remove(os.path.join(directory, name))


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _is_whiteout(path: str) -> bool:
    from minictr.engine.images.whiteouts import is_whiteout

    return is_whiteout(path)


def _opaque(path: str) -> bool:
    from minictr.engine.images.whiteouts import is_opaque

    return is_opaque(path)
