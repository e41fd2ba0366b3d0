"""A live monitor for a running container: memory and CPU over time, with the limits drawn.

:class:`Monitor` samples a container's cgroup (:meth:`Manager.stats`) in a
background thread and redraws an SVG chart inside an ``ipywidgets.HTML``
by setting its ``value`` trait — light, and it works wherever widgets do.
It stops by itself when the container's cgroup empties (or is removed), or
with the Stop button, or :meth:`Monitor.stop`. Afterwards
:meth:`Monitor.summary` is the same chart and a few numbers as static
output, for a reader without a kernel (GitHub, nbviewer).

The charts are plain SVG strings (:func:`svg_chart`), so a notebook can
draw other series the same way (a limited container against an unlimited
neighbour). This module imports ipywidgets only when a widget is made, and
nothing on the container start path imports this module.
"""

from __future__ import annotations

import html
import itertools
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from minictr.kernel.cgroups.base import Manager
    from minictr.kernel.cgroups.stats import Stats

COLOURS = ("#1d6fa5", "#e07a1f", "#2a9d4b", "#8e44ad")
MIB = 1 << 20


def cpu_series(samples: list[Stats]) -> list[tuple[float, float]]:
    """(seconds since the first sample, CPUs in use) between consecutive samples."""
    points = []
    for before, after in itertools.pairwise(samples):
        elapsed = after.time - before.time
        if elapsed > 0:
            points.append((after.time - samples[0].time, (after.cpu_usage_us - before.cpu_usage_us) / 1e6 / elapsed))
    return points


def memory_series(samples: list[Stats]) -> list[tuple[float, float]]:
    """(seconds since the first sample, MiB in use)."""
    return [(s.time - samples[0].time, s.memory / MIB) for s in samples] if samples else []


def _nice_ceiling(value: float) -> float:
    """A round number just above ``value`` (an axis maximum)."""
    for step in (0.5, 1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000):
        if value <= step:
            return float(step)
    return float(int(value) + 1)


def svg_chart(
    series: dict[str, list[tuple[float, float]]],
    *,
    title: str,
    unit: str,
    limit: float | None = None,
    limit_label: str = "limit",
    width: int = 620,
    height: int = 190,
    seconds: float | None = None,
) -> str:
    """A line chart of named series of (t, value) points, with a dashed red limit line if given."""
    left, right, top, bottom = 66, 12, 26, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for points in series.values() for _, v in points]
    span = max([seconds or 0] + [t for points in series.values() for t, _ in points] + [1.0])
    top_value = _nice_ceiling(max([*values, limit or 0, 0.001]) * 1.1)

    def x(t: float) -> float:  # seconds -> pixels
        return left + plot_w * t / span

    def y(v: float) -> float:  # a value -> pixels (above the top is drawn at the top)
        return top + plot_h * (1 - min(v, top_value) / top_value)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#bbb"/>',
    ]
    for fraction in (0, 0.5, 1):
        value = top_value * fraction
        out.append(
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:g} {html.escape(unit)}</text>'
        )
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#e4e4e4"/>')
    out.append(f'<text x="{left + plot_w}" y="{height - 8}" text-anchor="end">{span:.0f} s</text>')
    out.append(f'<text x="{left}" y="{height - 8}">0 s</text>')
    if limit is not None:
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(limit):.1f}" y2="{y(limit):.1f}" stroke="#d62828" '
            'stroke-width="1.5" stroke-dasharray="6,4"/>'
        )
        out.append(
            f'<text x="{left + plot_w - 4}" y="{y(limit) - 4:.1f}" text-anchor="end" fill="#d62828">'
            f"{html.escape(limit_label)}</text>"
        )
    for index, (name, points) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        if len(points) > 1:
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{left + 8 + 150 * index}" y="{top + 14}" fill="{colour}">■ {html.escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


class Monitor:
    """Sample a container's cgroup every ``interval`` seconds; show memory and CPU live (:meth:`widget`)."""

    def __init__(self, cgroup: Manager, *, interval: float = 0.25, title: str = "container") -> None:
        self.cgroup = cgroup
        self.interval = interval
        self.title = title
        self.samples: list[Stats] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._view: Any = None
        self._status: Any = None

    # --- running -------------------------------------------------------------------------------

    def start(self) -> Monitor:
        """Start sampling in a background thread (without a widget: :meth:`widget` adds one)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="minictr-monitor", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                sample = self.cgroup.stats()
            except OSError:
                break  # the cgroup is gone
            if not self.cgroup.exists():
                break  # removed while being read: v1's files then read as zeros, not a real sample
            self.samples.append(sample)
            if self._view is not None:
                self._view.value = self.svg()
            if len(self.samples) > 1 and not self.cgroup.pids():
                break  # the container has ended
            self._stopping.wait(self.interval)
        self._stopping.set()
        if self._status is not None:
            self._status.value = "stopped — " + self.text()

    def stop(self) -> None:
        """Stop sampling (the chart keeps what it has)."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def wait(self, timeout: float = 60) -> bool:
        """Wait until sampling stops (the container ended, or :meth:`stop`); True if it did in time."""
        return self._stopping.wait(timeout)

    @property
    def running(self) -> bool:
        """True while the background thread samples."""
        return not self._stopping.is_set()

    # --- showing -------------------------------------------------------------------------------

    def widget(self) -> Any:
        """The live view: the chart, a status line and a Stop button (ipywidgets); starts sampling."""
        import ipywidgets

        self._view = ipywidgets.HTML(self.svg())
        self._status = ipywidgets.Label(f"sampling every {self.interval:g} s")
        button = ipywidgets.Button(description="Stop", icon="stop", button_style="warning")
        button.on_click(lambda _button: self.stop())
        self.start()
        return ipywidgets.VBox([self._view, ipywidgets.HBox([button, self._status])])

    def svg(self) -> str:
        """Both charts, memory above CPU, as one SVG string (what the widget shows)."""
        samples = list(self.samples)
        last = samples[-1] if samples else None
        memory_limit = last.memory_limit / MIB if last and last.memory_limit else None
        cpu_limit = last.cpu_limit if last else None
        memory = svg_chart(
            {"memory": memory_series(samples)},
            title=f"{self.title}: memory",
            unit="MiB",
            limit=memory_limit,
            limit_label=f"limit {memory_limit:g} MiB" if memory_limit else "",
        )
        cpu = svg_chart(
            {"CPU": cpu_series(samples)},
            title=f"{self.title}: CPU",
            unit="CPUs",
            limit=cpu_limit,
            limit_label=f"quota {cpu_limit:g} CPUs" if cpu_limit else "",
        )
        # one SVG document holding both (nested <svg>s), so that it shows as an image anywhere
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" width="620" height="390" viewBox="0 0 620 390">'
            f'{memory}<g transform="translate(0,200)">{cpu}</g></svg>'
        )

    def text(self) -> str:
        """One line of numbers: peak memory, average CPU, throttling, OOM kills."""
        if len(self.samples) < 2:
            return "no samples yet"
        first, last = self.samples[0], self.samples[-1]
        elapsed = last.time - first.time
        average = (last.cpu_usage_us - first.cpu_usage_us) / 1e6 / elapsed if elapsed > 0 else 0.0
        peak = max(s.memory for s in self.samples) / MIB
        return (
            f"{len(self.samples)} samples over {elapsed:.1f} s; memory peak {peak:.1f} MiB; "
            f"CPU {average:.2f} on average; throttled in {last.cpu_throttled - first.cpu_throttled} periods; "
            f"OOM kills {last.oom_kills}"
        )

    def summary(self) -> Any:
        """The static record, for a reader without a kernel: prints the numbers, returns the chart as an SVG image."""
        from IPython.display import SVG

        print(self.text())
        return SVG(data=self.svg())
