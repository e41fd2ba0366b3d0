"""The package's imports point down only, and never in a circle.

DESIGN.md puts minictr in layers: the kernel features the notebooks teach
at the bottom, the runtime (spec, process model) above them, the engine
(images, networks, containers) above that, and the command line, the
doctor and the tutorial on top. A module may import its own layer or lower
ones — at the top of the file or lazily inside a function, it makes no
difference — and no two modules may import each other, directly or round
a longer loop. The test reads the sources (``ast``), so it sees every
import, including those that only run on some code path.

The container start path imports nothing heavy (DESIGN.md): a fresh
interpreter that loads what ``minictr-oci``'s verbs, or the container's
first process, load finds none of the modules that cost milliseconds.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "minictr"

#: Bottom to top. A module belongs to the first entry naming it or a package above it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # minictr/__init__.py holds the version and loads its public names lazily (__import__): no static import
    (
        "base",
        (
            "minictr",
            "minictr.errors",
            "minictr.paths",
            "minictr.files",
            "minictr.config",
            "minictr.faults",
            "minictr.roots",
            "minictr.argformat",
            "minictr.hashing",
            "minictr.waiting",
        ),
    ),
    ("kernel features", ("minictr.kernel",)),
    ("runtime", ("minictr.runtime",)),
    ("images", ("minictr.engine.images",)),
    ("networks", ("minictr.engine.network",)),
    ("volumes", ("minictr.engine.volumes",)),
    (
        "containers",
        (
            "minictr.engine.container",
            "minictr.engine.container_dir",
            "minictr.engine.container_plan",
            "minictr.engine.container_root",
            "minictr.engine.container_view",
            "minictr.engine.system",
            "minictr.engine.logs",
            "minictr.engine.attach",
            "minictr.engine.terminal",
            "minictr.engine.console",
            "minictr.engine.monitor",
            "minictr.engine.monitor_cgroup",
            "minictr.engine.managed",
            "minictr.engine.lifecycle",
            "minictr.engine.health",
            "minictr.engine.container_cp",
            "minictr.engine.safe_tree",
            "minictr.engine.run_options",
            "minictr.engine.container_spec",
            "minictr.engine.exec",
        ),
    ),
    ("builds", ("minictr.engine.build",)),
    ("compose", ("minictr.engine.compose",)),  # multi-container projects, on builds, volumes, networks, containers
    ("engine", ("minictr.engine",)),  # the package itself (its docstring only)
    ("virtual machines", ("minictr.vm",)),  # beside containers, measured against them
    ("front ends", ("minictr.cli", "minictr.containers", "minictr.doctor", "minictr.tutorial")),
]


def module_name(path: pathlib.Path) -> str:
    """``minictr/engine/images/store.py`` -> ``minictr.engine.images.store``; a
    package's ``__init__`` is the package.
    """
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of the layer ``module`` belongs to."""
    if module == "minictr":
        return 0
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes if prefix != "minictr"):
            return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {__file__}")


def imported_modules(path: pathlib.Path) -> set[str]:
    """Every minictr module ``path`` imports, anywhere in the file (``from . import x`` names module x)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "minictr"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "minictr":
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _exists(candidate) else base)
    found.discard(here)
    return found


def _exists(module: str) -> bool:
    relative = pathlib.Path(*module.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").exists() or (PACKAGE / relative / "__init__.py").exists()


def import_graph() -> dict[str, set[str]]:
    """module -> the minictr modules it imports (only modules that exist as files)."""
    return {module_name(path): {m for m in imported_modules(path) if _exists(m)} for path in PACKAGE.rglob("*.py")}


def test_imports_point_down_only() -> None:
    upward = []
    for module, targets in sorted(import_graph().items()):
        for target in sorted(targets):
            if layer_of(target) > layer_of(module):
                upward.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} "
                              f"({LAYERS[layer_of(target)][0]})")  # fmt: skip
    assert not upward, "imports that point up:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = []
    for start in sorted(graph):
        # a path back to ``start``, depth first; each cycle is reported once, from its smallest member
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for target in sorted(graph.get(node, ())):
                if target == start and min(path) == start:
                    cycles.append(" -> ".join([*path, start]))
                elif target not in seen and target > start:
                    seen.add(target)
                    stack.append((target, [*path, target]))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    """The checker itself: a lazy relative import inside a function is found, resolved to the module."""
    graph = import_graph()
    assert (
        "minictr.runtime.process.parent" in graph["minictr.engine.container"]
    )  # from .process.parent import ... (top level)
    assert "minictr.kernel.cgroups" in graph["minictr.engine.container"]  # from . import cgroups (inside functions)
    assert "minictr.engine.images.store" in graph["minictr.engine.images.pull"]  # from .store import ...


#: Standard-library modules (and pyroute2) that cost a start milliseconds: ``dataclasses`` brings
#: ``inspect``, ``ast`` and ``dis``; ``shutil`` zlib, bz2 and lzma; ``hashlib`` OpenSSL.
HEAVY = ("dataclasses", "inspect", "shutil", "hashlib", "typing", "datetime", "tempfile", "pyroute2")

START_PATHS = {
    "minictr-oci's verbs": "from minictr.runtime.oci import cli, lifecycle, unsupported\n"
    "import minictr.runtime.process.parent, minictr.runtime.validate, minictr.kernel.cgroups\n"
    "for verb in ('create', 'start', 'state', 'kill', 'delete'): cli.build_parser(verb)",
    "the container's first process": "import minictr.runtime.process.child",
}


@pytest.mark.parametrize("path", sorted(START_PATHS))
def test_the_container_start_path_imports_nothing_heavy(path: str) -> None:
    code = f"{START_PATHS[path]}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-S", "-s", "-E", "-c", code], cwd=PACKAGE.parent, capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout.split() == []


#: What the container's first process does without, beyond HEAVY: together over half its imports' time.
#: (``json`` brings ``re``; ``socket``, ``signal`` and the protocol's messages ``enum``, with ``functools`` and
#: ``collections``; ``array`` loads ``collections`` too; ``-m`` would load runpy and contextlib.)
SPARED_BY_THE_CHILD = ("json", "re", "socket", "selectors", "enum", "signal", "functools", "collections", "array",
                       "contextlib", "runpy")  # fmt: skip


def test_the_container_first_process_spares_json_socket_and_enum() -> None:
    code = START_PATHS["the container's first process"] + "\nimport sys\n"
    code += f"print(' '.join(m for m in {SPARED_BY_THE_CHILD!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-S", "-s", "-E", "-c", code], cwd=PACKAGE.parent, capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout.split() == []


def test_minictr_run_builds_its_own_parser_from_two_modules() -> None:
    """``minictr run``'s command line: of the CLI only main and run load, and nothing heavy (the other verbs'
    modules, and their parsers, are for the other verbs)."""
    code = (
        "import sys\nfrom minictr.cli import main\n"
        "commands = main.build_parser(main._command_of(['--debug', 'run', '-d', 'busybox']))._subparsers._actions[-1]\n"
        f"print(sorted(commands.choices), sorted(m for m in sys.modules if m.startswith('minictr.cli.')),"
        f" [m for m in {HEAVY!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-S", "-s", "-E", "-c", code], cwd=PACKAGE.parent, capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout.strip() == "['run'] ['minictr.cli.main', 'minictr.cli.run'] []"


def test_every_public_name_of_the_package_loads() -> None:
    """``minictr.<name>`` for each of ``__all__``: modules (``minictr.linux`` is ``minictr.kernel.linux``) and names."""
    code = "import minictr\nprint(' '.join(type(getattr(minictr, n)).__name__ for n in minictr.__all__))"
    done = subprocess.run([sys.executable, "-S", "-s", "-E", "-c", code], cwd=PACKAGE.parent, capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert len(done.stdout.split()) == len(__import__("minictr").__all__)
