"""Firefox ESR and WebKitGTK from Debian's packages, for the browser tests Playwright cannot run there
(it drives only Chromium here; ../shared/ENVIRONMENT.md has the recipe).

Firefox is driven through Marionette (marionette-driver), WebKitGTK through its W3C WebDriver server
(WebKitWebDriver, spoken to over HTTP directly) under Xvfb, as it has no headless mode. Both offer
the same two verbs, ``goto`` and ``js``; the helpers on top (log in, send, wait for a condition) are
the same for both. Each browser runs in a process group of its own, killed whole at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any

import httpx2

MINIBROWSER = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser"
FIREFOX_PREFS = {
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.auto": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "network.captive-portal-service.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "extensions.update.enabled": False,
    "network.connectivity-service.enabled": False,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


class Engine:
    name = ""

    def goto(self, url: str) -> None:
        raise NotImplementedError

    def js(self, script: str, *args: Any) -> Any:
        """Run ``script`` (a function body: ``return …``, arguments as ``arguments[i]``) in the page."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # ---- the same on every engine -----------------------------------------------------------
    def wait(self, script: str, *args: Any, what: str, timeout: float = 60) -> Any:
        """Poll ``script`` until it returns something truthy; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.js(script, *args)
            except Exception:  # the page is navigating: ask again
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: timed out waiting for {what}")
            time.sleep(0.05)

    def count(self, selector: str) -> int:
        return self.js("return document.querySelectorAll(arguments[0]).length", selector)

    def text(self, selector: str) -> str:
        return self.js(
            "const all = document.querySelectorAll(arguments[0]);"
            "return all.length ? all[all.length - 1].textContent : ''",
            selector,
        )

    def login(self, base_url: str, username: str, password: str) -> None:
        self.goto(base_url + "/accounts/login/")
        self.wait("return document.querySelector('[data-testid=username]')", what="the login form")
        self.js(
            "document.querySelector('[data-testid=username]').value = arguments[0];"
            "document.querySelector('[data-testid=password]').value = arguments[1];"
            "document.querySelector('[data-testid=login-button]').click();",
            username,
            password,
        )
        self.wait("return document.querySelector('[data-testid=chat-input]')", what="the chat page")
        self.wait_connected()

    def wait_connected(self) -> None:
        """The page's socket is open (chat.js marks it on the chat section)."""
        self.wait("return document.querySelector('#chat[data-socket=open]')", what="the page's WebSocket")

    def send(self, message: str) -> None:
        self.js(
            "const input = document.querySelector('[data-testid=chat-input]');"
            "input.value = arguments[0]; input.dispatchEvent(new Event('input', {bubbles: true}));"
            "document.querySelector('[data-testid=send-button]').click();",
            message,
        )


class Firefox(Engine):
    name = "firefox"

    def __init__(self) -> None:
        from marionette_driver.marionette import Marionette

        port = _free_port()
        self.profile = tempfile.mkdtemp(prefix="chimera-firefox-")
        prefs = {**FIREFOX_PREFS, "marionette.port": port}
        with open(os.path.join(self.profile, "user.js"), "w") as f:
            for key, value in prefs.items():
                literal = (
                    str(value).lower()
                    if isinstance(value, bool)
                    else value
                    if isinstance(value, int)
                    else f'"{value}"'
                )
                f.write(f'user_pref("{key}", {literal});\n')
        env = {"PATH": os.environ["PATH"], "HOME": self.profile, "MOZ_REMOTE_SETTINGS_DEVTOOLS": "1"}
        self.process = subprocess.Popen(
            [
                "firefox-esr",
                "--marionette",
                "--headless",
                "--no-remote",
                "--new-instance",
                "--profile",
                self.profile,
            ],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = Marionette(host="127.0.0.1", port=port)
        self.client.start_session()

    def goto(self, url: str) -> None:
        self.client.navigate(url)

    def js(self, script: str, *args: Any) -> Any:
        # One sandbox for every script, so what one script leaves on window the next one reads.
        return self.client.execute_script(script, script_args=list(args), new_sandbox=False)

    def close(self) -> None:
        try:
            self.client.delete_session()
        except Exception:
            pass
        _kill(self.process)


class WebKit(Engine):
    name = "webkit"

    def __init__(self) -> None:
        read, write = os.pipe()
        self.xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
            pass_fds=(write,),
            start_new_session=True,
            stderr=subprocess.DEVNULL,
        )
        os.close(write)
        display = b""
        while not display.endswith(b"\n"):
            chunk = os.read(read, 16)
            if not chunk:
                raise RuntimeError("Xvfb did not start")
            display += chunk
        os.close(read)
        port = _free_port()
        env = {
            "PATH": os.environ["PATH"],
            "HOME": tempfile.mkdtemp(prefix="chimera-webkit-"),
            "DISPLAY": ":" + display.decode().strip(),
            "DBUS_SESSION_BUS_ADDRESS": "disabled:",
        }
        self.driver = subprocess.Popen(
            ["WebKitWebDriver", f"--port={port}"],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{port}"
        self.http = httpx2.Client(timeout=60)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.http.get(self.base + "/status")
                break
            except httpx2.TransportError:
                if time.monotonic() > deadline or self.driver.poll() is not None:
                    raise RuntimeError("WebKitWebDriver did not start") from None
                time.sleep(0.1)
        options = {"binary": MINIBROWSER, "args": ["--automation"]}
        caps = {
            "capabilities": {
                "alwaysMatch": {"browserName": "MiniBrowser", "webkitgtk:browserOptions": options}
            }
        }
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        response = self.http.request(method, self.base + path, json=body)
        value = response.json().get("value")
        if response.status_code != 200:
            raise RuntimeError(f"WebKitWebDriver {path}: {value}")
        return value

    def goto(self, url: str) -> None:
        self._call("POST", f"/session/{self.session}/url", {"url": url})

    def js(self, script: str, *args: Any) -> Any:
        return self._call(
            "POST", f"/session/{self.session}/execute/sync", {"script": script, "args": list(args)}
        )

    def close(self) -> None:
        try:
            self._call("DELETE", f"/session/{self.session}")
        except Exception:
            pass
        self.http.close()
        _kill(self.driver)
        _kill(self.xvfb)


ENGINES = {"firefox": Firefox, "webkit": WebKit}
