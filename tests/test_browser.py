"""The tutorial in a real browser: JupyterLab started by scripts/lab.sh, driven in headless Debian chromium.

What a learner does, through the UI: open a notebook, Run → Run All Cells, wait for the kernel to go
idle, read the outputs. Checked: no cell shows an error, and notebook 07's live cgroup monitor renders and
updates while the cells run (its chart changes, its status line ends "stopped — N samples …").

To keep CI time bounded only 00 (the welcome) and 07 (the live widget) run in full; every other notebook
is opened and must render its saved outputs without an error and with the kernel idle. A screenshot of
every notebook is saved under ``test-artifacts/screenshots/`` (gitignored) for people to look at.

Chromium aborts requests when the host's interfaces change, as they do while the notebooks run, so it
runs in a network namespace of its own, joined to the lab by a relay (``tests/browser_netns.py``).

Selected with ``-m browser``; needs root (the notebooks do), Debian's ``chromium`` and
``chromium-driver`` and the ``selenium`` package (all in the test set-up); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(path.name for path in (REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))
RUN_IN_FULL = ("00-welcome.ipynb", "07-cgroups.ipynb")
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

pytestmark = [pytest.mark.browser, pytest.mark.root]

try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
except ImportError:  # the test extra installs it; without it the module is skipped with the reason
    webdriver = None


def _skip_reason() -> str | None:
    if webdriver is None:
        return "selenium is not installed (pip install -e '.[test]')"
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        return f"{' and '.join(missing)} missing (apt-get install chromium chromium-driver)"
    return None


def wait_for(condition: Callable[[], Any], timeout: float, what: str, poll: float = 0.5) -> Any:
    """Poll ``condition`` until it returns something true; fail saying ``what`` did not happen in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _processes_mentioning(*needles: str) -> list[str]:
    """``pid cmdline`` of every process whose command line contains one of ``needles``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(pid) != os.getpid() and any(needle in cmdline for needle in needles):
            found.append(f"{pid} {cmdline[:200]}")
    return found


class Lab:
    """A JupyterLab server started through scripts/lab.sh on 127.0.0.1, a free port and a token of its own."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        # JupyterLab settings of this test only: render every cell, not only those in view (windowing), so every
        # output can be read; never autosave, so the notebooks in the repository keep their saved outputs
        for plugin, values in (("notebook-extension/tracker", {"windowingMode": "none"}),
                               ("docmanager-extension/plugin", {"autosave": False})):  # fmt: skip
            path = directory / "settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = dict(os.environ, PORT=str(self.port), MINICTR_SKIP_SETUP="1",
                   JUPYTERLAB_SETTINGS_DIR=str(directory / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(directory / "workspaces"),
                   JUPYTER_RUNTIME_DIR=str(directory / "runtime"))  # fmt: skip
        self.log = open(directory / "lab.log", "wb")  # noqa: SIM115 - closed in stop()
        # expose_app_in_browser: the test reads the notebook model (outputs, kernel status) the page shows
        command = ["bash", str(REPO / "scripts" / "lab.sh"), f"--IdentityProvider.token={self.token}",
                   "--LabApp.expose_app_in_browser=True"]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )  # killed as a group in stop()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}?token={self.token}"

    def api(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(self.url(path), method=method)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy
        with opener.open(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"jupyter lab exited: {(self.directory / 'lab.log').read_text()[-2000:]}")
        try:
            return bool(self.api("/api/status"))
        except OSError:
            return False

    def stop(self) -> None:
        """Shut the kernels down, then the server; nothing of it may stay."""
        try:
            for session in self.api("/api/sessions"):
                self.api(f"/api/sessions/{session['id']}", method="DELETE")
        except OSError:
            pass  # the server is gone already; the leftover check below still runs
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    server = Lab(tmp_path_factory.mktemp("lab"))
    try:
        wait_for(server.ready, 120, "JupyterLab to answer on its port")
        yield server
    finally:
        server.stop()
        left = _wait_gone(server)
        assert not left, f"the browser test left processes running: {left}"


def _wait_gone(server: Lab) -> list[str]:
    """Wait until no process mentions the lab's token or directory; return those still there after 30 s."""
    deadline = time.monotonic() + 30
    while (left := _processes_mentioning(server.token, str(server.directory))) and time.monotonic() < deadline:
        time.sleep(1)
    return left


def _start(command: list[str], log: pathlib.Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    with open(log, "wb") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture(scope="module")
def browser(lab: Lab) -> Iterator[Any]:
    """Headless chromium through chromedriver, both in a network namespace of their own (browser_netns.py)."""
    driver_port = _free_port()
    command = [sys.executable, str(REPO / "tests" / "browser_netns.py"), str(lab.port), str(driver_port)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    relay = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, start_new_session=True)
    chromedriver = None
    try:
        assert relay.stdout is not None and relay.stdout.readline().strip() == b"ready", "the relay did not start"
        chromedriver = _start(["nsenter", f"--net=/proc/{relay.pid}/ns/net", CHROMEDRIVER, f"--port={driver_port}"],
                              lab.directory / "chromedriver.log")  # fmt: skip
        status = f"http://127.0.0.1:{driver_port}/status"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        wait_for(lambda: _answers(opener, status), 60, "chromedriver to answer")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in ("--headless=new", "--no-sandbox",  # root: chromium's sandbox refuses to run as root
                         "--disable-dev-shm-usage", "--window-size=1400,1000", "--no-first-run",
                         f"--user-data-dir={lab.directory / 'chromium'}"):  # fmt: skip
            options.add_argument(argument)
        driver = webdriver.Remote(command_executor=f"http://127.0.0.1:{driver_port}", options=options)
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        if chromedriver is not None:
            _stop(chromedriver)
        _stop(relay)


def _answers(opener: Any, url: str) -> bool:
    try:
        with opener.open(url, timeout=5) as response:
            return bool(json.loads(response.read())["value"]["ready"])
    except (OSError, ValueError, KeyError):
        return False


# JavaScript run in the page: the state of the notebook in the main area, as JupyterLab holds it.
NOTEBOOK_STATE = """
const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
if (!panel || !panel.content || !panel.content.model || !panel.sessionContext) return null;
const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
const cells = [];
for (const cell of panel.content.model.cells) {
  if (cell.type !== 'code') continue;
  const errors = [];
  for (let i = 0; i < cell.outputs.length; i++) {
    const out = cell.outputs.get(i).toJSON();
    if (out.output_type === 'error') errors.push(out.ename + ': ' + out.evalue);
  }
  cells.push({count: cell.executionCount, outputs: cell.outputs.length, errors: errors});
}
return {path: panel.context.path, ready: panel.context.isReady, kernel: kernel ? kernel.status : null,
        cells: cells};
"""


def _state(driver: Any) -> dict[str, Any] | None:
    return driver.execute_script(NOTEBOOK_STATE)  # type: ignore[no-any-return]


def _open(driver: Any, lab: Lab, name: str) -> dict[str, Any]:
    driver.get(lab.url(f"/lab/tree/{name}"))
    try:

        def opened() -> dict[str, Any] | None:
            state = _state(driver)
            return state if state and state["path"] == name and state["ready"] and state["kernel"] == "idle" else None

        return wait_for(opened, 120, f"{name} to open with an idle kernel")  # type: ignore[no-any-return]
    except AssertionError as exc:
        shot = _screenshot(driver, name)
        raise AssertionError(f"{exc}; the page's notebook state: {_state(driver)} (see {shot})") from None


def _shown_errors(driver: Any) -> list[str]:
    """Error outputs as the page renders them (a traceback, or a short HostLacks message)."""
    stderr = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    shown = driver.find_elements(By.CSS_SELECTOR, stderr)
    return [element.text[:300] for element in shown if "Traceback" in element.text or "Error" in element.text]


def _errors(state: dict[str, Any]) -> list[str]:
    return [error for cell in state["cells"] for error in cell["errors"]]


def _screenshot(driver: Any, name: str) -> pathlib.Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / (pathlib.Path(name).stem + ".png")
    driver.save_screenshot(str(path))
    return path


def _menu(driver: Any, menu: str, item: str) -> None:
    """Click ``menu`` in the menu bar, then its entry ``item``, as a learner would."""
    menus = driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item")
    next(entry for entry in menus if entry.text.strip() == menu).click()

    def entry() -> Any:
        labels = driver.find_elements(By.CSS_SELECTOR, "li.lm-Menu-item .lm-Menu-itemLabel")
        return next((label for label in labels if label.text.strip() == item), None)

    wait_for(entry, 10, f"{menu} → {item} in the menu").click()


def _run_all(driver: Any) -> None:
    """Edit → Clear Outputs of All Cells (so the saved outputs cannot pass for new ones), then Run → Run All Cells."""
    _menu(driver, "Edit", "Clear Outputs of All Cells")
    wait_for(lambda: not any(cell["count"] or cell["outputs"] for cell in _state(driver)["cells"]), 30,
             "the outputs to clear")  # fmt: skip
    _menu(driver, "Run", "Run All Cells")


# The live cgroup monitors on the page: an ipywidgets VBox holding the HTML chart, a Stop button and a label.
MONITORS = """
const views = [];
for (const box of document.querySelectorAll('.widget-vbox')) {
  // the status is the last label (ipywidgets also draws an empty description label per widget)
  const chart = box.querySelector('.widget-html svg'), labels = box.querySelectorAll('.widget-label');
  if (chart && labels.length) views.push([chart.outerHTML, labels[labels.length - 1].textContent.trim()]);
}
return views;
"""


def _monitor_views(driver: Any) -> list[tuple[str, str]]:
    """(chart, status line) of every live cgroup monitor on the page, read in one step (the page changes)."""
    return [(chart, status) for chart, status in driver.execute_script(MONITORS)]


@pytest.mark.parametrize("name", RUN_IN_FULL)
def test_run_all_cells_through_the_ui(browser: Any, lab: Lab, name: str) -> None:
    saved = (REPO / "notebooks" / name).read_bytes()
    state = _open(browser, lab, name)
    assert state["cells"], f"{name} shows no code cells"
    _run_all(browser)
    charts: set[str] = set()

    def finished() -> dict[str, Any] | None:
        for chart, _status in _monitor_views(browser):
            charts.add(chart)  # the live chart, seen while the cells run
        now = _state(browser)
        # done: every cell ran; or a cell failed, which stops Run All (the asserts below say which)
        done = now and now["kernel"] == "idle" and (all(cell["count"] for cell in now["cells"]) or _errors(now))
        return now if done else None

    try:
        state = wait_for(finished, 600, f"every cell of {name} to run and the kernel to go idle", poll=0.3)
    finally:
        shot = _screenshot(browser, name)
    assert (REPO / "notebooks" / name).read_bytes() == saved, f"{name} was saved by the lab: its outputs changed"
    assert not _errors(state), f"{name}: cells show errors: {_errors(state)} (see {shot})"
    assert not _shown_errors(browser), f"{name}: the page shows errors: {_shown_errors(browser)} (see {shot})"
    if name == "07-cgroups.ipynb":
        views = _monitor_views(browser)
        assert views, f"the live cgroup monitor did not render (see {shot})"
        status = views[0][1]
        assert status.startswith("stopped — ") and "samples over" in status, status
        assert len(charts) >= 2, f"the monitor's chart never changed in the page: {len(charts)} version(s) seen"


@pytest.mark.parametrize("name", [name for name in NOTEBOOKS if name not in RUN_IN_FULL])
def test_open_and_render(browser: Any, lab: Lab, name: str) -> None:
    state = _open(browser, lab, name)
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output"), 30, f"{name}'s saved outputs")
    shot = _screenshot(browser, name)
    assert all(cell["count"] for cell in state["cells"]), f"{name} is not saved executed"
    assert not _errors(state), f"{name}: saved errors: {_errors(state)} (see {shot})"
    news = browser.find_elements(By.XPATH, "//*[contains(text(), 'Jupyter news')]")
    assert not news, "JupyterLab asks about news: jupyter/labconfig/page_config.json was not used"
