"""Helpers for the notebooks: pictures, host checks, exercise checks and their solutions.

The notebooks keep their cells short and do the heavy lifting here, through
the names below (``from minictr import tutorial; tutorial.require("root")``).
Nothing here changes the calling process (a Jupyter kernel): exercises run in
a child interpreter (:func:`run_in_child`), containers through minictr.

The modules follow the curriculum:

- ``common``      the ``minictr`` command, what this host allows, showing code, clean-up
- ``processes``   processes as the host sees them in /proc; waiting for them, stopping ``minictr run``
- ``containers``  running containers: a function or a command inside, removing them
- ``checking``    running the learner's function in a child, and the :class:`Verdict`
- ``pictures``    the SVG pictures
- ``welcome`` (00), ``ex_chroot`` (01), ``mounts`` (02), ``uts_ipc`` (03), ``pid`` (04), ``users`` (05),
  ``network`` (06, with ``netlab``, the network it builds by hand in a child process), ``limits`` (07),
  ``images`` (08), ``security`` (09), ``microservices`` (11, imported by its notebook), ``vms`` (12, with
  ``containerd``, a private containerd for its last part):
  each notebook's own helpers, its exercise check and reference solution
- ``steps``       the recipe's steps taught so far, pictured; containers built with the learner's own steps
- ``solutions``   every reference solution, by exercise name

Only the standard library is imported at module level; IPython is imported
when something is displayed. The container start path never imports this
package.
"""

from __future__ import annotations

from minictr.tutorial.checking import Verdict, run_in_child
from minictr.tutorial.common import (
    MINICTR,
    USUAL_ROOT,
    HostLacks,
    brief,
    clean,
    have,
    leftovers,
    minictr,
    minictr_command,
    picture,
    remove_tree,
    require,
    show_source,
    workdir,
)
from minictr.tutorial.containers import call_in, exec_in, exec_output, pid_of, remove_container
from minictr.tutorial.ex_chroot import check_enter_root, interfaces, judge_enter_root
from minictr.tutorial.images import (
    LoopbackRegistry,
    check_container_diff,
    http_get,
    internet_route,
    judge_container_diff,
    show_answer,
    start_registry,
    tar_entries,
    upper_listing,
)
from minictr.tutorial.lab_picture import svg_network_lab
from minictr.tutorial.limits import (
    average,
    busy,
    cgroup_lines,
    cgroups_left,
    check_memory_usage,
    dd_rate,
    fork_failures,
    judge_memory_usage,
    loop_disk,
    sample_cpu,
    svg_cgroup_trees,
)
from minictr.tutorial.mounts import check_pivot_into, judge_pivot_into, mount_points, propagation
from minictr.tutorial.network import (
    NetLab,
    check_next_address,
    describe_lab,
    judge_next_address,
    links_of,
    svg_network,
)
from minictr.tutorial.pictures import (
    svg_chroot_tree,
    svg_id_map,
    svg_image_parts,
    svg_overlay,
    svg_pid_trees,
    svg_pivot_root,
    svg_process_model,
    svg_vm_vs_containers,
)
from minictr.tutorial.pid import caught_signals, pid_table, zombies
from minictr.tutorial.processes import (
    alive,
    children,
    comm,
    kill_container,
    process_tree,
    status,
    stop,
    wait_for_child,
    wait_for_descendant,
    wait_until,
)
from minictr.tutorial.security import ATTEMPTS as ESCAPE_ATTEMPTS
from minictr.tutorial.security import (
    attempt_results,
    capability_table,
    escape_table,
    filter_excerpt,
    seccomp_rules_for,
    status_lines,
)
from minictr.tutorial.solutions import reference, solution
from minictr.tutorial.step_exercises import (
    check_drop_bounding,
    check_init,
    check_join_cgroup,
    check_new_user,
    compare,
    judge_drop_bounding,
    judge_init,
    judge_join_cgroup,
    judge_new_user,
)
from minictr.tutorial.steps import (
    check_own_steps,
    judge_own_steps,
    own_steps,
    run_with,
    show_recipe,
    svg_recipe,
    taught,
)
from minictr.tutorial.users import RootlessUser
from minictr.tutorial.uts_ipc import check_new_uts, judge_new_uts
from minictr.tutorial.vms import (
    check_density_ratio,
    judge_density_ratio,
    svg_figures,
    svg_orchestration,
    svg_this_host,
)
from minictr.tutorial.welcome import check_my_namespaces, judge_my_namespaces

__all__ = [
    "ESCAPE_ATTEMPTS",
    "MINICTR",
    "USUAL_ROOT",
    "HostLacks",
    "LoopbackRegistry",
    "NetLab",
    "RootlessUser",
    "Verdict",
    "alive",
    "attempt_results",
    "average",
    "brief",
    "busy",
    "call_in",
    "capability_table",
    "caught_signals",
    "cgroup_lines",
    "cgroups_left",
    "check_container_diff",
    "check_density_ratio",
    "check_drop_bounding",
    "check_enter_root",
    "check_init",
    "check_join_cgroup",
    "check_memory_usage",
    "check_my_namespaces",
    "check_new_user",
    "check_new_uts",
    "check_next_address",
    "check_own_steps",  # steps
    "check_pivot_into",
    "children",
    "clean",
    "comm",
    "compare",
    "dd_rate",
    "describe_lab",
    "escape_table",
    "exec_in",
    "exec_output",
    "filter_excerpt",
    "fork_failures",
    "have",
    "http_get",
    "interfaces",
    "internet_route",
    "judge_container_diff",
    "judge_density_ratio",
    "judge_drop_bounding",
    "judge_enter_root",
    "judge_init",
    "judge_join_cgroup",
    "judge_memory_usage",
    "judge_my_namespaces",
    "judge_new_user",
    "judge_new_uts",
    "judge_next_address",
    "judge_own_steps",
    "judge_pivot_into",
    "kill_container",
    "leftovers",
    "links_of",
    "loop_disk",
    "minictr",
    "minictr_command",
    "mount_points",
    "own_steps",
    "picture",
    "pid_of",
    "pid_table",
    "process_tree",
    "propagation",
    "reference",
    "remove_container",
    "remove_tree",
    "require",
    "run_in_child",
    "run_with",
    "sample_cpu",
    "seccomp_rules_for",
    "show_answer",
    "show_recipe",
    "show_source",
    "solution",
    "start_registry",
    "status",
    "status_lines",
    "stop",
    "svg_cgroup_trees",
    "svg_chroot_tree",
    "svg_figures",
    "svg_id_map",
    "svg_image_parts",
    "svg_network",
    "svg_network_lab",
    "svg_orchestration",
    "svg_overlay",
    "svg_pid_trees",
    "svg_pivot_root",
    "svg_process_model",
    "svg_recipe",
    "svg_this_host",
    "svg_vm_vs_containers",
    "tar_entries",
    "taught",
    "upper_listing",
    "wait_for_child",
    "wait_for_descendant",
    "wait_until",
    "workdir",
    "zombies",
]  # fmt: skip
