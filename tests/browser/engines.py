"""Firefox ESR and WebKitGTK from Debian, driven over WebDriver with one small API.

* Firefox ESR: WebDriver BiDi, which Firefox speaks itself (``--remote-debugging-port``);
  no geckodriver (not in Debian bookworm). The client is a few commands over a WebSocket
  (``websocket-client``, which Selenium brings).
* WebKitGTK: Debian's ``WebKitWebDriver`` (package ``webkit2gtk-driver``) with Selenium's
  ``webdriver.Remote``, MiniBrowser in automation mode on an Xvfb display of our own.

Both click and type through the protocol's input actions (real pointer and key events), never
through ``element.click()`` in page script. Nothing is downloaded.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

FIREFOX = Path("/usr/bin/firefox-esr")
WEBKIT_DRIVER = Path("/usr/bin/WebKitWebDriver")
MINIBROWSER = Path("/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser")
XVFB = Path("/usr/bin/Xvfb")
TIMEOUT_S = 20.0
KEYS = {"Enter": "\ue007", "ArrowDown": "\ue015", "Backspace": "\ue003", "Tab": "\ue004"}


class Driver(Protocol):
    """What a flow needs from a browser: navigate, click, type, read the page."""

    name: str

    def goto(self, url: str) -> None: ...
    def click(self, css: str) -> None: ...
    def type(self, text: str) -> None: ...
    def press(self, key: str) -> None: ...
    def js(self, expression: str) -> Any: ...


def wait_for(driver: Driver, expression: str, what: str, timeout: float = TIMEOUT_S) -> Any:
    """Evaluate *expression* in the page until truthy; else fail naming *what* and its value."""
    deadline = time.monotonic() + timeout
    value: Any = None
    while time.monotonic() < deadline:
        try:
            value = driver.js(expression)
        except PageGone:
            value = None  # a navigation is under way: ask the next page
        if value:
            return value
        time.sleep(0.05)  # polling the page: the protocols have no "wait for a condition"
    raise AssertionError(f"{driver.name}: {what} (last value: {value!r})")


def text_of(css: str) -> str:
    """A JS expression: the text of the first element matching *css*, or ''."""
    return f"(document.querySelector({json.dumps(css)}) || {{}}).textContent || ''"


class PageGone(Exception):
    """The page the command addressed was replaced by a navigation."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def missing_tools(*paths: Path) -> str | None:
    gone = [str(p) for p in paths if not p.exists()]
    return f"{', '.join(gone)} missing (.ci/run installs firefox-esr, webkit2gtk-driver, xvfb)" \
        if gone else None


def stop(process: subprocess.Popen[Any]) -> None:
    """End *process* and its group (browsers start helpers), waiting for it."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@contextmanager
def xvfb() -> Iterator[str]:
    """An X display of our own (Xvfb picks a free number and tells it on a pipe)."""
    read_end, write_end = os.pipe()
    process = subprocess.Popen([str(XVFB), "-displayfd", str(write_end), "-screen", "0",
                                "1280x1024x24", "-nolisten", "tcp"], pass_fds=(write_end,),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        number = pipe.readline().strip()
    try:
        if not number:
            raise AssertionError(f"Xvfb did not start (exit {process.poll()})")
        yield f":{number}"
    finally:
        stop(process)


# -- Firefox over WebDriver BiDi ---------------------------------------------------------


class FirefoxBiDi:
    """Firefox ESR headless, driven over WebDriver BiDi on its own WebSocket."""

    name = "firefox"

    def __init__(self, profile: Path) -> None:
        import websocket

        (profile / "user.js").write_text(
            'user_pref("browser.shell.checkDefaultBrowser", false);\n'
            'user_pref("datareporting.policy.dataSubmissionEnabled", false);\n'
            'user_pref("app.update.disabledForTesting", true);\n'
            'user_pref("browser.aboutwelcome.enabled", false);\n')
        self.log = profile / "firefox.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(FIREFOX), "--headless", "--no-remote", "--profile", str(profile),
                 "--remote-debugging-port=0", "about:blank"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "MOZ_CRASHREPORTER_DISABLE": "1"})
        self.ids = itertools.count(1)
        try:
            self.socket = websocket.create_connection(
                f"{self._endpoint()}/session", suppress_origin=True, timeout=TIMEOUT_S)
            self.send("session.new", {"capabilities": {}})
            tree = self.send("browsingContext.getTree", {})
            self.context = tree["contexts"][0]["context"]
        except BaseException:
            stop(self.process)
            raise

    def _endpoint(self) -> str:
        """The ws:// address Firefox prints once its BiDi server listens."""
        marker = "WebDriver BiDi listening on "
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for line in self.log.read_text(errors="replace").splitlines():
                if line.startswith(marker):
                    return line[len(marker):].strip()
            if self.process.poll() is not None:
                break
            time.sleep(0.05)  # Firefox tells its port only in its log
        raise AssertionError(f"firefox-esr never opened WebDriver BiDi: {self.log.read_text()}")

    def send(self, method: str, params: dict[str, Any]) -> Any:
        command_id = next(self.ids)
        self.socket.send(json.dumps({"id": command_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") != command_id:
                continue  # an event, or a late answer
            if message.get("type") == "error":
                if message.get("error") in ("no such frame", "no such node", "no such element"):
                    raise PageGone(message.get("message"))
                raise AssertionError(f"firefox {method}: {message.get('error')}: "
                                     f"{message.get('message')}")
            return message["result"]

    def goto(self, url: str) -> None:
        self.send("browsingContext.navigate",
                  {"context": self.context, "url": url, "wait": "complete"})

    def js(self, expression: str) -> Any:
        result = self.send("script.evaluate", {
            "expression": f"JSON.stringify(({expression}) ?? null)", "awaitPromise": False,
            "target": {"context": self.context}})
        if result.get("type") == "exception":
            details = result["exceptionDetails"]
            if "context" in str(details.get("text", "")).lower():
                raise PageGone(details.get("text"))
            raise AssertionError(f"firefox: {expression}: {details.get('text')}")
        return json.loads(result["result"]["value"])

    def _element(self, css: str) -> dict[str, Any]:
        result = self.send("script.evaluate", {
            "expression": f"(() => {{ const e = document.querySelector({json.dumps(css)});"
                          " if (e) e.scrollIntoView({block: 'center'}); return e; })()",
            "awaitPromise": False, "target": {"context": self.context},
            "resultOwnership": "root"})
        node = result.get("result", {})
        if node.get("type") != "node":
            raise AssertionError(f"firefox: no element {css}")
        return {"sharedId": node["sharedId"]}

    def click(self, css: str) -> None:
        origin = {"type": "element", "element": self._element(css)}
        self.send("input.performActions", {"context": self.context, "actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [{"type": "pointerMove", "x": 0, "y": 0, "origin": origin},
                        {"type": "pointerDown", "button": 0},
                        {"type": "pointerUp", "button": 0}]}]})

    def _keys(self, values: list[str]) -> None:
        actions = [a for v in values for a in ({"type": "keyDown", "value": v},
                                               {"type": "keyUp", "value": v})]
        self.send("input.performActions", {"context": self.context, "actions": [
            {"type": "key", "id": "keyboard", "actions": actions}]})

    def type(self, text: str) -> None:
        self._keys(list(text))

    def press(self, key: str) -> None:
        self._keys([KEYS[key]])

    def quit(self) -> None:
        try:
            self.send("session.end", {})
        finally:
            self.socket.close()
            stop(self.process)


# -- WebKitGTK over WebKitWebDriver ------------------------------------------------------


class WebKitSelenium:
    """MiniBrowser (WebKitGTK) through Debian's WebKitWebDriver and Selenium's Remote."""

    name = "webkit"

    def __init__(self, display: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.common.options import ArgOptions

        port = free_port()
        self.process = subprocess.Popen(
            [str(WEBKIT_DRIVER), f"--port={port}", "--host=127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "DISPLAY": display})
        options = ArgOptions()
        options.set_capability("browserName", "MiniBrowser")
        options.set_capability("webkitgtk:browserOptions",
                               {"binary": str(MINIBROWSER), "args": ["--automation"]})
        try:
            self.driver = self._connect(webdriver, port, options)
        except BaseException:
            stop(self.process)
            raise

    def _connect(self, webdriver: Any, port: int, options: Any) -> Any:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise AssertionError(f"WebKitWebDriver did not listen on {port}") from None
                time.sleep(0.05)  # until its port answers
        from selenium.webdriver.remote.client_config import ClientConfig
        from selenium.webdriver.remote.remote_connection import RemoteConnection

        config = ClientConfig(remote_server_addr=f"http://127.0.0.1:{port}")
        return webdriver.Remote(command_executor=RemoteConnection(client_config=config),
                                options=options)

    def goto(self, url: str) -> None:
        self.driver.get(url)

    def js(self, expression: str) -> Any:
        from selenium.common.exceptions import WebDriverException

        try:
            answer = self.driver.execute_script(
                f"return JSON.stringify(({expression}) ?? null)")
        except WebDriverException as error:
            raise PageGone(str(error)) from error
        return json.loads(answer)

    def click(self, css: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        element = self.driver.find_element("css selector", css)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        ActionChains(self.driver).move_to_element(element).click().perform()

    def type(self, text: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).send_keys(text).perform()

    def press(self, key: str) -> None:
        self.type(KEYS[key])

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            stop(self.process)


@contextmanager
def launch(engine: str) -> Iterator[Driver]:
    """A fresh browser of *engine* ("firefox" or "webkit"), quit at the end."""
    with tempfile.TemporaryDirectory(prefix=f"scp-{engine}-") as home:
        if engine == "firefox":
            firefox = FirefoxBiDi(Path(home))
            try:
                yield firefox
            finally:
                firefox.quit()
            return
        with xvfb() as display:
            webkit = WebKitSelenium(display)
            try:
                yield webkit
            finally:
                webkit.quit()


def which_missing(engine: str) -> str | None:
    """Why *engine* cannot be launched here, or None."""
    import importlib.util

    module = "websocket" if engine == "firefox" else "selenium"
    if importlib.util.find_spec(module) is None:
        return f"the Python module {module} is missing (pip install -e '.[test]')"
    if engine == "firefox":
        return missing_tools(FIREFOX)
    reason = missing_tools(WEBKIT_DRIVER, MINIBROWSER, XVFB)
    if reason is None and shutil.which("WebKitWebDriver") is None:
        reason = "WebKitWebDriver is not on PATH"
    return reason
