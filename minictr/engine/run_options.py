"""What a user may ask of one container: :class:`RunOptions`, Docker's ``run`` flags as fields.

The command line (:mod:`minictr.cli.run`), the Python API (:mod:`minictr.containers`),
compose and build all fill one in; :mod:`.container_spec` turns it and an image into a spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from typing import Any

    from minictr.kernel.security.options import Security

from minictr.errors import UsageError

ISOLATIONS = ("full", "chroot")


USERNS_MODES = ("host", "private")


#: Where ``--userns private`` maps the container's ids on the host (as podman's default range).
PRIVATE_ID_BASE = 100000


PRIVATE_ID_COUNT = 65536


@dataclass
class RunOptions:
    """What ``minictr run`` was asked for, beyond the image and command."""

    isolation: str = "full"
    env: list[str] = field(default_factory=list)
    workdir: str | None = None
    entrypoint: str | None = None
    hostname: str | None = None
    domainname: str | None = None
    init: bool = False
    network: str | None = None  # none, host, container:ID, bridge or a network's name; default: bridge (none rootless)
    name: str | None = None
    network_aliases: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)  # --dns IP[:PORT]: where a user network's DNS server forwards
    labels: dict[str, str] = field(
        default_factory=dict
    )  # -l/--label KEY=VALUE, merged over the image's (com.docker.compose.service: a DNS name)
    healthcheck: dict[str, Any] | None = (
        None  # --health-*: overrides of the image's Healthcheck (minictr.engine.health)
    )
    publish: list[str] = field(default_factory=list)
    publish_all: bool = False
    userns: str = "host"
    uidmap: list[str] = field(default_factory=list)
    gidmap: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)  # --mount type=volume|bind|tmpfs,source=…,target=…[,readonly]
    read_only: bool = False
    timens: bool = False
    detach: bool = False
    user: str | None = None
    platform: str | None = None
    pull: str = "missing"
    # resource limits, as Docker spells them (strings like "512m" or numbers): see minictr.kernel.cgroups.resources
    memory: str | int | None = None
    memory_reservation: str | int | None = None
    memory_swap: str | int | None = None
    cpus: str | float | None = None
    cpu_quota: str | int | None = None
    cpu_period: str | int | None = None
    cpu_shares: str | int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: str | int | None = None
    blkio_weight: str | int | None = None
    device_read_bps: list[str] = field(default_factory=list)
    device_write_bps: list[str] = field(default_factory=list)
    device_read_iops: list[str] = field(default_factory=list)
    device_write_iops: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    cgroup_parent: str | None = None
    # security, as Docker spells it: see minictr.kernel.security.options
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    tmpfs: list[str] = field(default_factory=list)
    ulimits: list[str] = field(default_factory=list)
    oom_score_adj: int | None = None
    sig_proxy: bool = True  #: a foreground run passes SIGINT, SIGTERM and SIGHUP on to its container (--sig-proxy)

    def security(self) -> Security:
        """The security flags, parsed (UsageError when malformed)."""
        from minictr.kernel.security.options import parse_security_opts

        return parse_security_opts(self.security_opt, self.privileged, self.cap_add, self.cap_drop)

    keep_upper: str | None = None  # build steps: move the container's upper directory here when it exits
    # the recipe's steps this container is made with (minictr.runtime.process.recipe; None: all), and a learner's
    # functions carrying some out ({"pivot_into": {"name": ..., "source": ...}}): the notebooks' runtime grows
    steps: list[str] | None = None
    own_steps: dict[str, dict[str, str]] = field(default_factory=dict)

    def own_step_options(self, cgroup: Any = None) -> dict[str, Any] | None:
        """The child's options for the learner's functions: their source, and for ``join_cgroup`` the directories
        of the container's ``cgroup`` (a Manager; one per hierarchy) it writes itself into. None without any."""
        if not self.own_steps:
            return None
        dirs = list(dict.fromkeys(cgroup.dirs.values())) if cgroup is not None else []  # v1: cpu and cpuacct may share
        return {"own_steps": self.own_steps, "cgroup_dirs": dirs}

    def chosen_steps(self) -> tuple[str, ...]:
        """The recipe's steps for this container: ``steps``, or chroot alone for ``--isolation chroot``, or all."""
        from minictr.runtime.process import recipe

        if self.isolation not in ISOLATIONS:
            raise UsageError(f"--isolation {self.isolation!r}: choose one of {', '.join(ISOLATIONS)}")
        if self.isolation == "chroot" and self.steps is not None and set(self.steps) != {"chroot"}:
            raise UsageError("--isolation chroot is the chroot step alone: give it or --steps, not both")
        try:
            chosen = recipe.choose(["chroot"] if self.isolation == "chroot" else self.steps)
            recipe.check_own(self.own_steps, chosen)
        except ValueError as exc:
            raise UsageError(f"--steps: {exc}") from exc
        if self.steps is not None:
            self._check_flags(chosen)
        return chosen

    def _check_flags(self, steps: tuple[str, ...]) -> None:
        """A flag whose step the container does not have is an error, never silently ignored."""
        needs = {
            "network": (
                "--network/--publish",
                self.network not in (None, "host") or bool(self.publish or self.publish_all),
            ),
            # without the security step every capability stays, so --privileged and --cap-add are granted already
            "security": ("--cap-drop/--security-opt", bool(self.cap_drop or self.security_opt)),
            "mount": ("-v/--mount/--read-only", bool(self.volumes or self.mounts or self.read_only)),
        }
        for step, (flags, given) in needs.items():
            if given and step not in steps:
                raise UsageError(f"{flags} need the {step} step (--steps)")

    def resource_flags(self) -> dict[str, Any]:
        """The resource options only, by their keyword names (for
        :func:`minictr.kernel.cgroups.resources.from_flags`).
        """
        return {name: getattr(self, name) for name in RESOURCE_FLAGS}


#: The RunOptions fields that are resource limits.
RESOURCE_FLAGS = (
    "memory", "memory_reservation", "memory_swap", "cpus", "cpu_quota", "cpu_period", "cpu_shares", "cpuset_cpus",
    "cpuset_mems", "pids_limit", "blkio_weight", "device_read_bps", "device_write_bps", "device_read_iops",
    "device_write_iops", "devices",
)  # fmt: skip
