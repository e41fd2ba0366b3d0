"""The field checks the spec validator is made of: each names the field it complains about.

A :class:`Checker` collects problems instead of stopping at the first, so one
:class:`~minictr.errors.SpecError` can list them all. Every problem is one
line that starts with the field's path in the spec, written as a reader
would look it up::

    linux.namespaces[2].type: unknown namespace "foo"
    process.user.uid: must be an integer >= 0, not -1

The checks return the value when it has the right type (``None`` otherwise),
so a caller goes on to look inside it only when that is safe.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from typing import Any

#: JSON's names for Python's types, as a spec's author knows them.
_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer"}


def show(value: Any) -> str:
    """A value as JSON writes it (``"foo"``, ``-1``, ``true``), for messages."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def kind_of(value: Any) -> str:
    """What a value is, in JSON's words (``a string``, ``null``)."""
    if value is None:
        return "null"
    for kind, name in _KINDS.items():
        if type(value) is kind:
            return name
    return type(value).__name__


def is_int(value: Any) -> bool:
    """True for a JSON integer (Python's ``bool`` is an ``int``, but ``true`` is not a number)."""
    return isinstance(value, int) and not isinstance(value, bool)


def child(path: str, key: str | int) -> str:
    """The path of a member (``a.b``) or of an array's element (``a[2]``)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Checker:
    """Collects the problems of one spec, each as ``path: message``."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, path: str, message: str) -> None:
        """Record one problem of the field at ``path``."""
        self.problems.append(f"{path}: {message}")

    def typed(self, value: Any, path: str, kind: type) -> Any:
        """``value`` if it is of JSON type ``kind``; else record the mismatch and return None."""
        if (kind is int and is_int(value)) or (kind is not int and type(value) is kind):
            return value
        self.add(path, f"must be {_KINDS[kind]}, not {kind_of(value)}")
        return None

    def member(self, parent: dict[str, Any], key: str, path: str, kind: type, required: bool = False) -> Any:
        """``parent[key]`` checked against ``kind``; None when absent (a problem only if ``required``)."""
        if key not in parent:
            if required:
                self.add(child(path, key), "required")
            return None
        return self.typed(parent[key], child(path, key), kind)

    def integer(
        self, parent: dict[str, Any], key: str, path: str, minimum: int | None = None, maximum: int | None = None,
        required: bool = False,
    ) -> int | None:  # fmt: skip
        """An integer member within ``minimum..maximum`` (either bound optional)."""
        value: int | None = self.member(parent, key, path, int, required)
        if value is None:
            return None
        low_ok = minimum is None or value >= minimum
        high_ok = maximum is None or value <= maximum
        if low_ok and high_ok:
            return value
        if maximum is None:
            self.add(child(path, key), f"must be an integer >= {minimum}, not {value}")
        elif minimum is None:
            self.add(child(path, key), f"must be an integer <= {maximum}, not {value}")
        else:
            self.add(child(path, key), f"must be an integer from {minimum} to {maximum}, not {value}")
        return None

    def absolute(self, value: Any, path: str) -> str | None:
        """A string that is an absolute path."""
        text: str | None = self.typed(value, path, str)
        if text is not None and not text.startswith("/"):
            self.add(path, f"must be an absolute path, not {show(text)}")
            return None
        return text

    def array(self, parent: dict[str, Any], key: str, path: str, kind: type | None = None) -> list[tuple[str, Any]]:
        """The (path, element) pairs of an array member, each element checked against ``kind`` when given."""
        items = self.member(parent, key, path, list)
        if items is None:
            return []
        pairs = [(child(child(path, key), index), item) for index, item in enumerate(items)]
        if kind is None:
            return pairs
        return [(where, item) for where, item in pairs if self.typed(item, where, kind) is not None]

    def objects(self, parent: dict[str, Any], key: str, path: str) -> list[tuple[str, dict[str, Any]]]:
        """The (path, element) pairs of an array of objects."""
        return self.array(parent, key, path, dict)

    def string_map(self, parent: dict[str, Any], key: str, path: str) -> None:
        """An object whose values are all strings (annotations, sysctl, unified)."""
        mapping = self.member(parent, key, path, dict)
        for name, value in (mapping or {}).items():
            self.typed(value, f"{child(path, key)}[{show(name)}]", str)

    def one_of(
        self, parent: dict[str, Any], key: str, path: str, allowed: tuple[str, ...] | frozenset[str], what: str,
        required: bool = False,
    ) -> None:  # fmt: skip
        """A string member that must be one of ``allowed``."""
        value = self.member(parent, key, path, str, required)
        if value is not None and value not in allowed:
            self.add(child(path, key), f"unknown {what} {show(value)}")

    def unique_type(
        self, entry: dict[str, Any], where: str, known: tuple[str, ...] | frozenset[str], seen: set[str], what: str,
    ) -> str | None:  # fmt: skip
        """``entry["type"]``: required, one of ``known``, not already in ``seen`` (which it joins)."""
        kind: str | None = self.member(entry, "type", where, str, required=True)
        if kind is None:
            return None
        if kind not in known:
            self.add(child(where, "type"), f"unknown {what} {show(kind)}")
        elif kind in seen:
            self.add(child(where, "type"), f"{show(kind)} is listed twice")
        else:
            seen.add(kind)
            return kind
        return None
