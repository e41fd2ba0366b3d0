"""Collection rules for the whole repository (tests/ and, through nbval, notebooks/).

- ``@pytest.mark.root`` tests are skipped, with the reason, when not root;
- ``@pytest.mark.cgroup2`` tests are skipped unless /sys/fs/cgroup is pure
  cgroup v2 (``scripts/cgroup2-vm.sh`` runs them in a guest where it is);
- a notebook lists what it needs in ``metadata.minictr.requires`` (names of
  ``minictr doctor`` checks); where this host lacks one, the notebook is
  skipped with the doctor's finding as the reason — never silently.
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark what this host cannot run as skipped, saying why."""
    checks = None
    layout = None
    for item in items:
        if item.get_closest_marker("root") and os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="needs root (uid 0)"))
        if item.get_closest_marker("cgroup2"):
            if layout is None:
                from minictr.doctor import cgroup_layout

                layout = cgroup_layout()["layout"]
            if layout != "v2":
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"needs a pure cgroup v2 hierarchy (this host's is {layout}): "
                        "bash scripts/cgroup2-vm.sh runs it in a QEMU guest"
                    )
                )
        path = pathlib.Path(str(item.fspath))
        if path.suffix != ".ipynb":
            continue
        requires = json.loads(path.read_text()).get("metadata", {}).get("minictr", {}).get("requires", [])
        if checks is None:
            from minictr import doctor

            checks = {check.name: check for check in doctor.run_checks()}
        lacking = [checks[name] for name in requires if name in checks and checks[name].status != "ok"]
        if lacking:
            reason = "; ".join(f"{c.title}: {c.status} ({c.detail})" for c in lacking)
            item.add_marker(pytest.mark.skip(reason=f"{path.name} needs what this host lacks: {reason}"))
