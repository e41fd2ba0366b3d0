"""minictr compose: multi-container applications from a compose.yaml (the Compose specification's common subset).

    from minictr.engine import compose
    project = compose.load("examples/microservices/compose.yaml")
    compose.up(project, scale={"web": 3})
    compose.replicas(project.name)           # the containers, by service and number
    compose.down(project.name, volumes=True)

:mod:`model` and :mod:`fields` read and check the file, :mod:`replicas` finds a
project's containers by their labels and makes one, :mod:`converge` is ``up``
and ``down``, :mod:`operations` the verbs on running projects.
"""

from minictr.engine.compose.converge import build_service, down, up
from minictr.engine.compose.model import Project, Service, find_file, load
from minictr.engine.compose.operations import logs, restart, start, stop
from minictr.engine.compose.replicas import Replica, replicas

__all__ = [
    "Project", "Replica", "Service", "build_service", "down", "find_file", "load", "logs", "replicas", "restart",
    "start", "stop", "up",
]  # fmt: skip
