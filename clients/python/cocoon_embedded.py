"""The COCOON client inside a Python app, with the `openai` SDK the app already uses.

    from cocoon_embedded import CocoonClient

    with CocoonClient("client.toml") as cocoon:          # starts the client, waits for a proxy
        answer = cocoon.openai.chat.completions.create(
            model="SmolLM2-135M-Instruct",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
        )

`CocoonClient` runs `cocoon client --config CONFIG` as a child of the app, on a free loopback
port only the app knows, waits until the client is connected to a proxy, hands out an
`openai.OpenAI` pointed at it, and stops the child (SIGTERM, draining in-flight answers) when
the app leaves the `with` block or exits. Attestation checks, the COCOON protocol and payments
stay in the audited Rust client: nothing security-relevant is re-implemented in Python.

Needs the `cocoon` binary (`COCOON_BIN`, else `cocoon` on PATH) and the `openai` package.
Standard library otherwise; copy this file into your app.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

__all__ = ["CocoonClient", "CocoonClientError"]


class CocoonClientError(RuntimeError):
    """The client could not be started or did not connect; the message has its log's tail."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CocoonClient:
    """A `cocoon client` child process and an `openai.OpenAI` for it (see the module doc)."""

    def __init__(self, config: str, *, binary: str | None = None, ready_timeout: float = 60.0,
                 stop_timeout: float = 15.0, log: str = "info"):
        self.config = config
        self.binary = binary or os.environ.get("COCOON_BIN") or shutil.which("cocoon") or "cocoon"
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.log = log
        self.port: int | None = None
        self.openai = None
        self._proc: subprocess.Popen | None = None
        self._log_file = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "CocoonClient":
        import openai  # the app's dependency, imported only when used

        self.port = _free_port()
        self._log_file = tempfile.NamedTemporaryFile(prefix="cocoon-client-", suffix=".log", delete=False)
        self._proc = subprocess.Popen(
            [self.binary, "client", "--config", self.config, "--port", str(self.port), "--log", self.log],
            stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        self._wait_ready()
        # No retries: a COCOON error (402 balance, 503 no worker) should reach the app as it is.
        self.openai = openai.OpenAI(base_url=self.base_url, api_key="unused", max_retries=0)
        return self

    def _log_tail(self, limit: int = 4000) -> str:
        try:
            with open(self._log_file.name, "rb") as f:
                return f.read().decode("utf-8", "replace")[-limit:]
        except OSError:
            return ""

    def _wait_ready(self) -> None:
        """Until the client lists a model (it is connected to a proxy that has a worker)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise CocoonClientError(
                    f"cocoon client exited with code {self._proc.returncode}:\n{self._log_tail()}")
            try:
                with opener.open(f"{self.base_url}/models", timeout=2) as r:
                    if json.load(r).get("data"):
                        return
                    last = "connected, no model offered yet"
            except OSError as e:
                last = repr(e)
            time.sleep(0.2)
        self.stop()
        raise CocoonClientError(
            f"cocoon client was not ready within {self.ready_timeout} s ({last}):\n{self._log_tail()}")

    def stop(self) -> int | None:
        """Stops the child (SIGTERM, then SIGKILL after `stop_timeout`); its exit code."""
        if self.openai is not None:
            self.openai.close()
            self.openai = None
        proc, self._proc = self._proc, None
        code = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    code = proc.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait()
            else:
                code = proc.returncode
        if self._log_file is not None:
            self._log_file.close()
            os.unlink(self._log_file.name)
            self._log_file = None
        return code

    def __enter__(self) -> "CocoonClient":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
