"""06 · network namespace: the hand-built lab, interfaces as pyroute2 reports them, the picture, the exercise.

The lab (:mod:`.netlab`) and every look into a container's namespace run in
child processes: entering a namespace is never done by the notebook kernel.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from minictr.tutorial.checking import Verdict, printed_by, raised, run_in_child, source_of
from minictr.tutorial.common import package_parent


def _python(*args: str, timeout: float = 60) -> str:
    """Run this interpreter (with its site-packages: pyroute2) from the package's parent; return stdout."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin", "LC_ALL": "C.UTF-8"}
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=package_parent(), env=env, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args[:2])} failed: "
            f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
        )
    return done.stdout


class NetLab:
    """Notebook 06's lab, built one step per cell: each step runs in a child (``python -m ...netlab STEP``).

    A step prints what the client of its probe got and the state of every
    namespace, then shows the picture with what is new drawn in orange.
    """

    def __init__(self) -> None:
        from minictr.tutorial.netlab import NAMES, netns_dir_state  # pyroute2 comes with a lab, not with the package

        self.before = netns_dir_state()
        self.state: dict[str, Any] = {}
        if any(os.path.exists(f"/run/netns/{name}") for name in NAMES):
            self.clean()  # what an interrupted run left

    def step(self, name: str) -> dict[str, Any]:
        """Run step ``name`` of :data:`.netlab.STEPS`, print what it changed, show the picture; return its report."""
        from IPython.display import display

        from minictr.tutorial.common import picture
        from minictr.tutorial.lab_picture import svg_network_lab

        report: dict[str, Any] = json.loads(_python("-m", "minictr.tutorial.netlab", name))
        for line in report.get("said", []):
            print(line)
        for probe, answer in report.get("probe", {}).items():
            print(f"{probe}: {answer}")
        print(describe_lab(report["state"]))
        display(picture(svg_network_lab(report["state"], self.state)))
        self.state = report["state"]
        return report

    def clean(self) -> list[str]:
        """Remove the lab and /run/netns if the lab made it; return what is left (nothing, if all went well)."""
        from minictr.tutorial.netlab import NETNS_DIR, netns_dir_state

        existed, mounts = self.before
        report = json.loads(_python("-m", "minictr.tutorial.netlab", "clean", "1" if existed else "0", str(mounts)))
        left = [f"namespace {name}" for name in report["left"]]
        if netns_dir_state() != self.before:
            left.append(f"{NETNS_DIR}: {netns_dir_state()} (before the lab: {self.before})")
        self.state = {}
        return left


def describe_lab(state: dict[str, Any]) -> str:
    """Each namespace of the lab as ``ip`` would list it: links (and their state), addresses, routes."""
    lines = []
    for name, view in state.items():
        links = []
        for link in view["links"]:
            extra = [link["kind"]] if link["kind"] not in ("loopback", "device") else []
            extra += [f"port of {link['master']}"] if link["master"] else []
            kinds = f" ({', '.join(extra)})" if extra else ""
            addresses = "".join(f" {a}" for a in link["addresses"])
            links.append(f"{link['name']} {'UP' if link['up'] else 'DOWN'}{kinds}{addresses}")
        lines.append(f"{name:10} links:  " + "; ".join(links))
        lines.append(f"{'':10} routes: " + ("; ".join(view["routes"]) or "none"))
        if "forwarding" in view:
            lines.append(
                f"{'':10} forwarding {'on' if view['forwarding'] else 'off'}; nft: "
                + ("table ip nb06" if "table ip nb06" in view["ruleset"] else "no rules")
            )
    return "\n".join(lines)


_DESCRIBE = """
import json, os, sys
from minictr.kernel import linux
fd = os.open(f"/proc/{sys.argv[1]}/ns/net", os.O_RDONLY)
linux.setns(fd, linux.CLONE_NEWNET)
from minictr.engine.network.links import describe
print(json.dumps(describe()))
"""


def links_of(pid: int | None = None) -> list[dict[str, Any]]:
    """The interfaces of the host (``pid`` None) or of the network namespace of process ``pid``, from pyroute2."""
    if pid is None:
        from minictr.engine.network.links import describe

        return describe()
    links: list[dict[str, Any]] = json.loads(_python("-c", _DESCRIBE, str(pid)))
    return links


def svg_network(host: list[dict[str, Any]], containers: dict[str, list[dict[str, Any]]]) -> str:
    """An SVG of minictr's part of the host: each bridge, its veths, and the container at the other end of each.

    ``host`` is :func:`links_of` the host; ``containers`` maps a container id to
    :func:`links_of` its PID 1. Only what pyroute2 reported is drawn.
    """
    bridges = [link for link in host if link["kind"] == "bridge" and link["name"].startswith("mctr-")]
    parts: list[str] = []
    y = 20
    for bridge in bridges:
        ports = [link for link in host if link["master"] == bridge["name"]]
        height = 70 + 70 * max(1, len(ports))
        parts.append(f'<rect x="10" y="{y}" width="300" height="{height}" rx="8" fill="#eef4ff" stroke="#4a6fa5"/>')
        parts.append(_text(20, y + 22, f"bridge {bridge['name']}", bold=True))
        parts.append(_text(20, y + 42, " ".join(bridge["addresses"]) + f"  mtu {bridge['mtu']}"))
        for row, port in enumerate(ports):
            py = y + 70 + 70 * row
            parts.append(f'<rect x="40" y="{py}" width="250" height="44" rx="6" fill="#fff" stroke="#4a6fa5"/>')
            parts.append(_text(50, py + 18, f"veth {port['name']} ({port['state']})"))
            container = port["name"][3:]
            inside = next((c for cid, c in containers.items() if cid.startswith(container)), None)
            eth0 = next((link for link in inside or [] if link["name"] == "eth0"), None)
            parts.append(f'<line x1="290" y1="{py + 22}" x2="400" y2="{py + 22}" stroke="#c0392b" stroke-width="3"/>')
            parts.append(f'<rect x="400" y="{py - 8}" width="270" height="60" rx="8" fill="#fdf2e9" stroke="#c0392b"/>')
            parts.append(_text(410, py + 12, f"container {container}", bold=True))
            parts.append(_text(410, py + 32, f"eth0 {' '.join(eth0['addresses'])}" if eth0 else "eth0: namespace gone"))
        y += height + 20
    if not bridges:
        parts.append(_text(20, 40, "no minictr bridge on this host right now"))
        y = 60
    header = _text(410, 14, "container network namespaces", bold=True) + _text(
        10, 14, "host network namespace", bold=True
    )
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="690" height="{y + 10}" font-family="sans-serif" '
            f'font-size="13">{header}{"".join(parts)}</svg>')  # fmt: skip


def _text(x: int, y: int, text: str, bold: bool = False) -> str:
    weight = ' font-weight="bold"' if bold else ""
    return f'<text x="{x}" y="{y}"{weight}>{html.escape(text)}</text>'


# --- the exercise: next_address(subnet, gateway, taken) ------------------------------------------


CASES = [
    (("10.88.0.0/24", "10.88.0.1", []), "10.88.0.2"),
    (("10.88.0.0/24", "10.88.0.1", ["10.88.0.2", "10.88.0.3"]), "10.88.0.4"),
    (("10.88.0.0/24", "10.88.0.1", ["10.88.0.3"]), "10.88.0.2"),
    (("192.168.7.0/29", "192.168.7.6", []), "192.168.7.1"),
    (("10.9.0.0/30", "10.9.0.1", ["10.9.0.2"]), None),
]


def _run_cases(
    source: str, name: str, cases: list[tuple[list[object], object]]
) -> list[dict[str, object]]:  # only builtins in annotations: it travels as source to a bare child
    """(Runs in the check's child.) Call the learner's function on every case."""
    from minictr.tutorial.checking import run_learner

    return [run_learner(source, name, *args) for args, _ in cases]


def check_next_address(function: Callable[[str, str, list[str]], Any]) -> None:
    """Run ``function`` on the cases in a child process; print ✔ or what is wrong."""
    judge_next_address(function).show()


def judge_next_address(function: Callable[[str, str, list[str]], Any]) -> Verdict:
    """The verdict on ``next_address(subnet, gateway, taken)``: the lowest free host address, or None when full."""
    name = function.__name__
    report = run_in_child(_run_cases, source_of(function), name, CASES)
    printed = printed_by(report)
    if "error" in report:
        return Verdict(
            False, printed + f"✘ the check could not run: {report['error']['type']}: {report['error']['message']}"
        )
    for (args, expected), outcome in zip(CASES, report.get("value") or [], strict=True):
        call = f"{name}({', '.join(repr(a) for a in args)})"
        if "error" in outcome:
            return Verdict(False, printed + raised(name, outcome["error"]) + f"\n  for {call}")
        got = outcome.get("value")
        if got != expected:
            why = {
                "10.88.0.1": "that is the gateway: the bridge holds it",
                "10.88.0.0": "that is the network address itself; hosts start one above it",
                "192.168.7.7": "that is the broadcast address, which no host may take",
            }.get(str(got), "")
            if expected is None:
                why = why or "every host address is taken (or is the gateway): return None"
            return Verdict(
                False, printed + f"✘ {call} returned {got!r}, expected {expected!r}" + (f":\n  {why}." if why else ".")
            )
    return Verdict(
        True,
        printed + f"✔ Correct: {name} skips the network and broadcast addresses, the gateway and the\n"
        "  leases, and says None when the subnet is full.",
    )


SOLUTIONS = {
    "next_address": '''
        def next_address(subnet, gateway, taken):
            """The lowest address of subnet a container may lease: not the gateway, not taken; None when full."""
            import ipaddress
            for address in ipaddress.ip_network(subnet).hosts():   # hosts() skips network and broadcast
                if str(address) != gateway and str(address) not in taken:
                    return str(address)
            return None
    ''',
}
