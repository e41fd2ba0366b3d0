"""Notebook 06's lab drawn as it grows: namespaces, veth cables, the bridge, what each step added in orange."""

from __future__ import annotations

from typing import Any

from minictr.tutorial.pictures import LIB, _box, _svg, _text

#: Where each interface of notebook 06's lab is drawn: namespace boxes, then (namespace, interface) slots.
_LAB_BOXES = {
    "nb06-a": (10, 30, 210, 135),
    "nb06-b": (10, 185, 210, 135),
    "nb06-host": (250, 10, 340, 350),
    "nb06-world": (610, 100, 155, 140),
}
_LAB_SLOTS = {
    ("nb06-a", "eth0"): (130, 75, 80, 44),
    ("nb06-b", "eth0"): (130, 230, 80, 44),
    ("nb06-host", "veth-a"): (260, 75, 80, 44),
    ("nb06-host", "veth-b"): (260, 230, 80, 44),
    ("nb06-host", "nb06-br"): (375, 90, 90, 185),
    ("nb06-host", "uplink"): (495, 150, 80, 44),
    ("nb06-world", "eth0"): (620, 150, 80, 44),
}
NEW = "#e76f51"


def _lab_links(state: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(ns, link["name"]): link for ns, view in state.items() for link in view["links"]}


def _veth_cables(links: dict[tuple[str, str], dict[str, Any]]) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """Pairs of veth ends, matched as the kernel reports them: each end names its peer's index."""
    ends = [(key, link) for key, link in links.items() if link["kind"] == "veth"]
    return [
        (a, b)
        for i, (a, la) in enumerate(ends)
        for b, lb in ends[i + 1 :]
        if a[0] != b[0] and la["peer"] == lb["index"] and lb["peer"] == la["index"]
    ]


def svg_network_lab(state: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    """Notebook 06's hand-built lab as the kernel reported it; what is new since ``before`` is drawn in orange.

    ``state`` maps a namespace name to its ``links`` (name, kind, up, master,
    peer, addresses) and ``routes``; nb06-host also has ``forwarding`` and ``ruleset``.
    """
    old_state = before or {}
    links, old = _lab_links(state), _lab_links(old_state)
    old_routes = {(ns, r) for ns, view in old_state.items() for r in view["routes"]}
    body: list[str] = []
    for name, (x, y, w, h) in _LAB_BOXES.items():
        if name not in state:
            body.append(_box(x, y, w, h, "#f8f9fa", dashed=True, stroke="#bbb"))
            body.append(_text(x + 10, y + 18, f"{name}: not yet", anchor="start", fill="#999", italic=True))
            continue
        view = state[name]
        fill = "#fdf2e9" if name in ("nb06-a", "nb06-b") else LIB
        body.append(_box(x, y, w, h, fill, stroke=NEW if name not in old_state else "#444", rx=8))
        body.append(_text(x + 10, y + 18, name, anchor="start", bold=True))
        lo = links.get((name, "lo"))
        if lo:
            shown = "up " + " ".join(lo["addresses"]) if lo["up"] else "down, no address"
            body.append(
                _text(
                    x + 10,
                    y + 35,
                    f"lo {shown}",
                    anchor="start",
                    size=11,
                    fill=NEW if lo != old.get((name, "lo")) else "#222",
                )
            )
        notes = [(r, (name, r) not in old_routes) for r in view["routes"]]
        if "forwarding" in view:
            forwarding = f"forwarding {'on' if view['forwarding'] else 'off'}"
            notes.insert(0, (forwarding, name in old_state and old_state[name].get("forwarding") != view["forwarding"]))
        for line in view.get("ruleset", "").splitlines():
            if "masquerade" in line or "dnat" in line:
                rule = line.strip()
                notes.append(("nft: " + rule, rule not in old_state.get(name, {}).get("ruleset", "")))
        for row, (note, new) in enumerate(notes):
            body.append(
                _text(
                    x + 10,
                    y + h - 8 - 14 * (len(notes) - 1 - row),
                    note,
                    anchor="start",
                    size=10,
                    fill=NEW if new else "#333",
                    bold=new,
                )
            )
    for a, b in _veth_cables(links):
        (ax, ay, aw, ah), (bx, by, bw, bh) = _LAB_SLOTS[a], _LAB_SLOTS[b]
        if ax > bx:  # draw from the left one
            (ax, ay, aw, ah), (bx, by, bw, bh) = (bx, by, bw, bh), (ax, ay, aw, ah)
        (x1, y1), (x2, y2) = (ax + aw, ay + ah / 2), (bx, by + bh / 2)
        body.append(f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#c0392b" stroke-width="4"/>')
    for key, link in links.items():
        if key not in _LAB_SLOTS:
            continue
        x, y, w, h = _LAB_SLOTS[key]
        if link["master"] and (key[0], link["master"]) in _LAB_SLOTS:
            port_y, bridge_x = y + h / 2, _LAB_SLOTS[(key[0], link["master"])][0]
            body.append(
                f'<line x1="{x + w}" y1="{port_y}" x2="{bridge_x}" y2="{port_y}" stroke="#4a6fa5" stroke-width="3"/>'
            )
        new = key not in old
        body.append(
            _box(
                x,
                y,
                w,
                h,
                "#ffffff" if link["up"] else "#e9ecef",
                stroke=NEW if new else "#4a6fa5",
                dashed=not link["up"],
                rx=5,
            )
        )
        body.append(_text(x + w / 2, y + 16, link["name"], size=11, bold=True))
        fresh = set(link["addresses"]) - set(old.get(key, {}).get("addresses", []))
        for row, address in enumerate(link["addresses"] or ["no address"]):
            body.append(
                _text(
                    x + w / 2,
                    y + 31 + 13 * row,
                    address,
                    size=10,
                    fill=NEW if address in fresh else "#555",
                    bold=address in fresh,
                )
            )
        if link["kind"] in ("veth", "bridge"):
            body.append(_text(x + w / 2, y + h - 3, link["kind"], size=9, italic=True, fill="#888"))
    body.append(
        _text(388, 378, "red: veth cables  ·  blue: bridge ports  ·  orange: new in this step", size=11, italic=True)
    )
    return _svg(775, 388, body)
