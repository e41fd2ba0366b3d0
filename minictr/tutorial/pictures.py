"""The notebooks' pictures, drawn as SVG strings (``tutorial.picture(tutorial.svg_...())`` shows one).

One function per picture, in the order the notebooks use them; the small
builders at the top keep the look the same everywhere.
"""

from __future__ import annotations

_FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'


def _box(
    x: float,
    y: float,
    w: float,
    h: float,
    fill: str,
    label: str = "",
    *,
    dashed: bool = False,
    stroke: str = "#444",
    size: int = 12,
    bold: bool = False,
    rx: int = 4,
) -> str:
    dash = ' stroke-dasharray="5,3"' if dashed else ""
    out = f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="{rx}" fill="{fill}" stroke="{stroke}"{dash}/>'
    if label:
        weight = ' font-weight="bold"' if bold else ""
        out += (
            f'<text x="{x + w / 2}" y="{y + h / 2 + size / 3}" text-anchor="middle" '
            f'font-size="{size}"{weight}>{label}</text>'
        )
    return out


def _text(
    x: float,
    y: float,
    label: str,
    *,
    size: int = 12,
    anchor: str = "middle",
    bold: bool = False,
    fill: str = "#222",
    italic: bool = False,
) -> str:
    weight = ' font-weight="bold"' if bold else ""
    style = ' font-style="italic"' if italic else ""
    return (
        f'<text x="{x}" y="{y}" text-anchor="{anchor}" font-size="{size}" fill="{fill}"{weight}{style}>{label}</text>'
    )


def _svg(width: int, height: int, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {_FONT}>' + "".join(body) + "</svg>"
    )


APP, LIB, KERNEL, HYPER, HARDWARE = "#a8dadc", "#e8f1f8", "#f4a261", "#e9c46a", "#ced4da"

_MONO = 'font-family="DejaVu Sans Mono, Menlo, monospace"'


def _mono(x: float, y: float, line: str, *, size: int = 13, fill: str | None = None) -> str:
    """One line of monospaced text, spaces kept (for trees drawn with ├── and └─)."""
    colour = f' fill="{fill}"' if fill else ""
    return f'<text x="{x}" y="{y}" font-size="{size}"{colour} {_MONO} xml:space="preserve">{line}</text>'


def _arrowhead(name: str, fill: str) -> str:
    """A marker called ``name``, for ``marker-end="url(#name)"`` on a line."""
    return (
        f'<defs><marker id="{name}" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">'
        f'<path d="M0,0 L10,4 L0,8 z" fill="{fill}"/></marker></defs>'
    )


# --- 00 · welcome ----------------------------------------------------------------------------------


def svg_vm_vs_containers() -> str:
    """Virtual machines (a guest kernel each, on a hypervisor) beside containers (processes of one kernel)."""
    body: list[str] = []
    # left: virtual machines
    x0 = 10
    body.append(_text(x0 + 175, 22, "Virtual machines", size=15, bold=True))
    for i in range(3):
        x = x0 + 8 + i * 115
        body.append(_box(x, 36, 105, 176, "#fff", stroke="#1d3557", rx=6))
        body.append(_text(x + 52.5, 52, f"VM {i + 1}", size=11, italic=True))
        body.append(_box(x + 8, 60, 89, 34, APP, "app"))
        body.append(_box(x + 8, 100, 89, 34, LIB, "libraries"))
        body.append(_box(x + 8, 140, 89, 34, KERNEL, "guest kernel", bold=True))
        body.append(_text(x + 52.5, 200, "virtual hardware", size=10, italic=True, fill="#555"))
    body.append(_box(x0 + 8, 222, 335, 34, HYPER, "hypervisor (KVM, Xen, Hyper-V…)"))
    body.append(_box(x0 + 8, 262, 335, 34, HARDWARE, "hardware"))
    body.append(_text(x0 + 175, 318, "each VM boots a whole operating system", size=12, italic=True))
    # right: containers
    x1 = 390
    body.append(_text(x1 + 175, 22, "Containers", size=15, bold=True))
    for i in range(3):
        x = x1 + 8 + i * 92
        body.append(_box(x, 76, 84, 136, "#fff", dashed=True, stroke="#1d3557", rx=6))
        body.append(_text(x + 42, 92, f"container {i + 1}", size=11, italic=True))
        body.append(_box(x + 7, 100, 70, 34, APP, "process"))
        body.append(_box(x + 7, 140, 70, 58, LIB, ""))
        body.append(_text(x + 42, 164, "its own", size=11))
        body.append(_text(x + 42, 180, "root files", size=11))
    body.append(_box(x1 + 286, 100, 57, 34, APP, "sshd", size=11))
    body.append(_box(x1 + 286, 140, 57, 34, APP, "jupyter", size=11))
    body.append(_text(x1 + 314, 192, "host", size=10, italic=True, fill="#555"))
    body.append(_text(x1 + 314, 204, "processes", size=10, italic=True, fill="#555"))
    body.append(_box(x1 + 8, 222, 335, 34, KERNEL, "one Linux kernel: namespaces + cgroups", bold=True))
    body.append(_box(x1 + 8, 262, 335, 34, HARDWARE, "hardware"))
    body.append(_text(x1 + 175, 318, "containers are processes sharing the host's kernel", size=12, italic=True))
    body.append('<line x1="375" y1="10" x2="375" y2="325" stroke="#bbb"/>')
    return _svg(740, 330, body)


def svg_process_model() -> str:
    """The process model: the kernel spawns a fresh child, which sets up and then becomes the program."""
    body = [
        _arrowhead("arrow", "#444"),
        _box(10, 30, 190, 70, APP, ""),
        _text(105, 58, "Jupyter kernel", bold=True, size=13),
        _text(105, 78, "many threads; never changed", size=11),
        _box(270, 30, 230, 70, LIB, ""),
        _text(385, 52, "python: minictr.runtime.process.child", size=11, bold=True),
        _text(385, 70, "one thread, fresh: unshare, mount,", size=11),
        _text(385, 86, "chroot / pivot_root, drop privileges", size=11),
        _box(570, 30, 160, 70, KERNEL, ""),
        _text(650, 58, "your program", bold=True, size=13),
        _text(650, 78, "(sh, a web server…)", size=11),
        '<line x1="200" y1="65" x2="268" y2="65" stroke="#444" stroke-width="1.5" marker-end="url(#arrow)"/>',
        _text(234, 57, "spawn", size=11),
        '<line x1="500" y1="65" x2="568" y2="65" stroke="#444" stroke-width="1.5" marker-end="url(#arrow)"/>',
        _text(534, 57, "execve", size=11),
        _text(385, 124, "config over a socketpair; READY, then START", size=11, italic=True, fill="#555"),
    ]
    return _svg(740, 135, body)


# --- 01 · chroot ----------------------------------------------------------------------------------


def svg_chroot_tree() -> str:
    """The host's tree with the rootfs inside it, and the same rootfs as a chrooted process sees it."""
    left = [
        "/",
        "├── bin  etc  home  usr …",
        "├── proc  (the host's processes)",
        "└── var",
        "    └── lib/minictr/…",
        "        └── rootfs",
        "            ├── bin  (busybox)",
        "            ├── etc  proc  tmp …",
        "            └── usr",
    ]
    right = ["/", "├── bin  (busybox)", "├── etc  proc  tmp …", "└── usr"]
    body = [
        _text(170, 22, "what the host sees", bold=True, size=14),
        _text(572, 22, "what the chrooted process sees", bold=True, size=14),
    ]
    body.append(_box(76, 126, 256, 80, "#fff3e0", stroke="#f4a261", rx=6))
    body.append(_box(462, 126, 220, 80, "#fff3e0", stroke="#f4a261", rx=6))
    for i, line in enumerate(left):
        body.append(_mono(20, 50 + i * 18, line))
    for i, line in enumerate(right):
        body.append(_mono(470, 140 + i * 18, line))
    body.append(_arrowhead("arr", "#f4a261"))
    body.append('<line x1="334" y1="166" x2="458" y2="166" stroke="#f4a261" stroke-width="2" marker-end="url(#arr)"/>')
    body.append(_text(396, 156, "chroot(rootfs)", size=12, bold=True))
    body.append(_text(572, 228, "nothing above rootfs has a name any more —", size=12, italic=True))
    body.append(_text(572, 246, "but it is all still there, and still shared", size=12, italic=True))
    return _svg(740, 256, body)


# --- 02 · mount namespace -------------------------------------------------------------------------


def svg_pivot_root() -> str:
    """The container's mount tree before pivot_root, after it, and after the old root is detached."""
    old, new, gone = "#ced4da", "#a8dadc", "#bbb"

    def line(x: float, y: float, text: str, color: str = "#222") -> str:
        return _mono(x, y, text, size=12, fill=color)

    body = [_arrowhead("pv", "#444")]
    titles = [(125, "1 · before"), (375, "2 · pivot_root(new, new/.oldroot)"), (620, "3 · umount2(/.oldroot), rmdir")]
    for x, title in titles:
        body.append(_text(x, 20, title, bold=True, size=12))
    # 1: the host's tree (a copy, in the container's own mount namespace) with the new root inside
    body.append(_box(8, 34, 234, 214, old, rx=6))
    for i, text in enumerate(["/           the host's root", "├── proc dev sys …", "└── run/minictr/…/rootfs"]):
        body.append(line(16, 54 + i * 17, text))
    body.append(_box(26, 108, 208, 118, new, rx=6))
    for i, text in enumerate(
        ["new root (a mount point)", "├── bin etc usr …", "├── proc  dev  sys", "└── .oldroot  (empty)"]
    ):
        body.append(line(34, 128 + i * 17, text))
    body.append(_text(125, 242, "every host mount is still here", size=11, italic=True))
    # 2: the new root on top, the old root hanging below it
    body.append(_box(258, 34, 234, 214, new, rx=6))
    for i, text in enumerate(["/           the new root", "├── bin etc usr …", "├── proc  dev  sys", "└── .oldroot"]):
        body.append(line(266, 54 + i * 17, text))
    body.append(_box(276, 126, 208, 96, old, rx=6))
    for i, text in enumerate(["the host's old root", "├── proc dev sys …", "└── run/minictr/…"]):
        body.append(line(284, 146 + i * 17, text))
    body.append(_text(375, 242, "the old root: reachable, still mounted", size=11, italic=True))
    # 3: only the new root is left
    body.append(_box(508, 34, 224, 110, new, rx=6))
    for i, text in enumerate(["/           the new root", "├── bin etc usr …", "└── proc  dev  sys"]):
        body.append(line(516, 54 + i * 17, text))
    body.append(_box(526, 160, 188, 62, "#fff", stroke=gone, dashed=True, rx=6))
    body.append(line(534, 184, "the host's root:", gone))
    body.append(line(534, 202, "not in this namespace", gone))
    body.append(_text(620, 242, "nothing above / to climb to", size=11, italic=True))
    for x in (244, 494):
        body.append(
            f'<line x1="{x}" y1="140" x2="{x + 12}" y2="140" stroke="#444" stroke-width="1.5" marker-end="url(#pv)"/>'
        )
    return _svg(740, 256, body)


# --- 04 · PID namespace ---------------------------------------------------------------------------


def svg_pid_trees() -> str:
    """The same processes numbered twice: in the host's pid namespace and in the container's."""
    host = [
        ("1", "init (systemd…)", 0),
        ("…", "", 0),
        ("3120", "python (this kernel)", 1),
        ("4211", "minictr", 2),
        ("4212", "minictr-wait", 3),
        ("4213", "minictr-init", 4),
        ("4214", "sleep", 5),
    ]
    body = [
        _text(180, 22, "the host's PID namespace", bold=True, size=14),
        _text(585, 22, "the container's PID namespace", bold=True, size=14),
        _arrowhead("pidarrow", "#e76f51"),
    ]
    body.append(_box(20, 164, 330, 54, "#fff3e0", stroke="#f4a261", dashed=True, rx=6))
    body.append(_box(470, 164, 230, 54, "#fff3e0", stroke="#f4a261", rx=6))
    for i, (number, name, depth) in enumerate(host):
        y = 52 + i * 26
        branch = "└─ " if depth else ""
        body.append(_mono(30, y, f"{number:>5}  {'   ' * max(depth - 1, 0)}{branch}{name}"))
    for i, (number, name) in enumerate((("1", "minictr-init"), ("2", "└─ sleep"))):
        y = 182 + i * 26
        body.append(_mono(480, y, f"{number:>3}  {name}"))
        body.append(
            f'<line x1="354" y1="{y - 4}" x2="466" y2="{y - 4}" stroke="#e76f51" stroke-width="1.5" '
            'stroke-dasharray="4,3" marker-end="url(#pidarrow)"/>'
        )
    body.append(_text(410, 158, "same process", size=11, italic=True, fill="#e76f51"))
    body.append(_text(585, 70, "PID 1 is the first process of the namespace;", size=12, italic=True))
    body.append(_text(585, 88, "nothing outside it has a number here:", size=12, italic=True))
    body.append(_text(585, 106, "the container cannot see or signal it", size=12, italic=True))
    body.append(
        _text(370, 248, "one process, one pid per namespace it is in — /proc/4213/status says  NSpid: 4213  1", size=12)
    )
    body.append(
        _text(
            370,
            268,
            "minictr-wait made the namespace but stays outside it: unshare(CLONE_NEWPID) moves only its children",
            size=12,
            italic=True,
            fill="#555",
        )
    )
    return _svg(740, 280, body)


# --- 05 · user namespace --------------------------------------------------------------------------


def svg_id_map() -> str:
    """uid_map ``0 100000 65536``: ids inside the container land on a range of the host's ids."""
    body = [
        '<defs><linearGradient id="idmap" x1="0" y1="0" x2="0" y2="1">'
        '<stop offset="0" stop-color="#a8dadc"/><stop offset="1" stop-color="#a8dadc" stop-opacity="0.35"/>'
        "</linearGradient></defs>"
    ]
    body.append(_text(20, 28, "inside the container (its user namespace)", anchor="start", bold=True, size=13))
    body.append(_box(300, 40, 300, 30, APP, "0 … 65535", size=12))
    body.append(_text(292, 60, "root = 0", anchor="end", size=11))
    body.append(_text(608, 60, "65535", anchor="start", size=11))
    body.append(_text(20, 60, "uid_map:  0  100000  65536", anchor="start", size=12, italic=True))
    body.append(_text(20, 76, "(inside, outside, count)", anchor="start", size=11, fill="#555"))
    # the band from the inside range down to the host's range
    body.append('<polygon points="300,70 600,70 560,150 440,150" fill="url(#idmap)" stroke="#7fb8bb"/>')
    body.append(_text(20, 140, "on the host", anchor="start", bold=True, size=13))
    segments = [
        (20, 50, "#f4a261", "0 root"),
        (70, 170, LIB, "1 … 99999: host users"),
        (240, 200, HARDWARE, "…"),
        (440, 120, APP, "100000 … 165535"),
        (560, 160, HARDWARE, "165536 …"),
    ]
    for x, w, fill, label in segments:
        body.append(_box(x, 150, w, 30, fill, label, size=11, rx=0))
    body.append(_text(500, 198, "the container's range", size=11, italic=True))
    body.append(_text(20, 198, "not mapped: shows as nobody", anchor="start", size=11, italic=True, fill="#555"))
    body.append(_text(20, 212, "(65534) inside", anchor="start", size=11, italic=True, fill="#555"))
    body.append(
        _text(370, 240, "root inside is uid 100000 on the host: the kernel checks every access as that user", size=12)
    )
    body.append(
        _text(
            370,
            258,
            "rootless: uid_map is  0  1000  1  — only your own uid, mapped to root inside",
            size=12,
            italic=True,
            fill="#555",
        )
    )
    return _svg(740, 268, body)


# --- 08 · images ----------------------------------------------------------------------------------


def svg_image_parts() -> str:
    """An image in a registry: a tag names a manifest, which names a config and layers, all by digest."""
    body = [_arrowhead("img", "#555")]
    body.append(_box(10, 70, 120, 40, "#ffffff", "tag  1", bold=True))
    body.append(_box(170, 60, 190, 60, LIB, "manifest", bold=True))
    body.append(_text(265, 110, "sha256:5c1f…", size=10, italic=True))
    body.append(_box(410, 10, 230, 50, "#fff3cd", "config  (Cmd, Env, User…,"))
    body.append(_text(525, 52, "rootfs.diff_ids)", size=12))
    for i, label in enumerate(("layer 1  tar+gzip", "layer 2  tar+zstd", "layer 3  tar")):
        body.append(_box(410, 75 + i * 35, 230, 28, APP, label, size=11))
    body.append('<line x1="130" y1="90" x2="168" y2="90" stroke="#555" marker-end="url(#img)"/>')
    body.append('<line x1="360" y1="80" x2="408" y2="40" stroke="#555" marker-end="url(#img)"/>')
    for i in range(3):
        body.append(f'<line x1="360" y1="95" x2="408" y2="{89 + i * 35}" stroke="#555" marker-end="url(#img)"/>')
    body.append(
        _text(
            325,
            200,
            "every arrow is a descriptor: {mediaType, digest, size} — the digest is the sha256 of the bytes",
            size=11,
            italic=True,
        )
    )
    return _svg(650, 210, body)


def svg_overlay() -> str:
    """overlayfs: read-only layers below, the container's upper directory above, one merged view."""
    body = [_box(20, 10, 560, 40, "#ffffff", "merged: the container's /  (what it sees)", bold=True)]
    body.append(
        _box(
            20,
            60,
            560,
            34,
            "#fff3cd",
            "upperdir: this container's changes — written files (copied up whole), whiteouts",
        )
    )
    for i, label in enumerate(("layer 3 (top)", "layer 2", "layer 1 (bottom)")):
        body.append(
            _box(20, 104 + i * 34, 560, 28, APP, f"lowerdir: {label} — read-only, shared by every container", size=11)
        )
    body.append(
        _text(
            300,
            220,
            "a read looks top-down and takes the first hit; a write goes only to upperdir",
            size=11,
            italic=True,
        )
    )
    return _svg(600, 230, body)


# --- 06 · network -----------------------------------------------------------------------------------
