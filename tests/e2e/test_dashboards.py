"""The operator dashboards in a real browser: `cocoon devnet --mock --workers 2` serves one chat
request, then headless Chromium (Debian's `chromium`) loads each role's page at `/` of its HTTP
port, runs its script against the live `/stats`, and dumps the DOM and a screenshot.

Each page must have rendered data (the script sets `data-state="ok"` on <body> after its first
successful render; a script error sets `data-error`), and show what the devnet did: the model,
two workers, the one request and what it cost. Screenshots go to $COCOON_SCREENSHOTS_DIR when
set (else the test's temporary directory); their paths are printed.

tests/e2e/run.sh installs chromium with apt-get when it is missing and it runs as root; without
it this test skips, loudly.
"""

import html.parser
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from test_openai_sdk import REPO_ROOT, _http, run_devnet

MODEL = "mock-model"
# The mock counts 6 prompt words and answers 8 tokens; the devnet's price is 20 nano-TON a token.
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
SPENT = "280 nano\u2011TON"
# Virtual time the page gets: the first /stats fetch and two refreshes (every 2 s).
VIRTUAL_TIME_MS = 5000
BROWSER_TIMEOUT_S = 60
PORTS_TIMEOUT_S = 10


def _chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def dash_devnet(tmp_path_factory, pytestconfig):
    yield from run_devnet(tmp_path_factory, pytestconfig, ["--mock", "--workers", "2"], MODEL)


def _stats_ports(log_path: Path):
    """The proxy's and the workers' HTTP addresses, from the devnet's startup lines
    (`... stats http://ADDR/stats`)."""
    deadline = time.monotonic() + PORTS_TIMEOUT_S
    while True:
        text = log_path.read_text(errors="replace")
        proxy = re.findall(r"^\s+proxy\s.*stats http://(\S+)/stats$", text, re.M)
        workers = re.findall(r"^\s+worker \d+\s.*stats http://(\S+)/stats$", text, re.M)
        if proxy and len(workers) == 2:
            return proxy[0], workers
        assert time.monotonic() < deadline, f"no stats addresses in the devnet log:\n{text[-3000:]}"
        time.sleep(0.1)


class _Texts(html.parser.HTMLParser):
    """The text under each element with an id (pieces joined by " | "), and <body>'s attributes."""

    VOID = {"meta", "link", "br", "img", "input", "hr", "col", "source", "wbr"}

    def __init__(self):
        super().__init__()
        self.stack = []
        self.texts = {}
        self.body = None

    def handle_starttag(self, tag, attrs):
        if tag == "body" and self.body is None:
            self.body = dict(attrs)
        if tag not in self.VOID:
            self.stack.append(dict(attrs).get("id"))

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        data = data.strip()
        if not data:
            return
        for element in filter(None, self.stack):
            self.texts.setdefault(element, []).append(data)

    def text(self, element):
        return " | ".join(self.texts.get(element, []))


def _render(url: str, screenshot: Path) -> _Texts:
    browser = _chromium()
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                f"--user-data-dir={profile}", "--window-size=1400,1000",
                f"--virtual-time-budget={VIRTUAL_TIME_MS}",
                f"--screenshot={screenshot}", "--dump-dom", url,
            ],
            capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S,
        )
    assert done.returncode == 0, f"chromium failed on {url}: {done.stderr[-2000:]}"
    assert screenshot.is_file() and screenshot.stat().st_size > 0, f"no screenshot of {url}"
    print(f"dashboard screenshot: {screenshot}")
    page = _Texts()
    page.feed(done.stdout)
    assert page.body is not None, f"no <body> in the DOM of {url}:\n{done.stdout[:2000]}"
    assert "data-error" not in page.body, f"{url}: script error: {page.body['data-error']}"
    assert page.body.get("data-state") == "ok", (
        f"{url} did not render /stats (state {page.body.get('data-state')!r}): "
        f"{page.text('banner')}"
    )
    return page


def test_each_role_dashboard_renders_the_live_stats(dash_devnet, tmp_path):
    if _chromium() is None:
        pytest.skip(
            "\n" + "!" * 72 + "\nCHROMIUM IS NOT INSTALLED: the dashboards were NOT checked in a browser.\n"
            "Install it (Debian: apt-get install -y chromium) or run tests/e2e/run.sh as root.\n"
            + "!" * 72
        )
    status, _, body = _http(
        "POST", f"{dash_devnet.base_url}/chat/completions",
        {"model": MODEL, "messages": QUESTION}, timeout=30,
    )
    assert status == 200, body[:500]
    proxy, workers = _stats_ports(dash_devnet.log_path)
    shots = Path(os.environ.get("COCOON_SCREENSHOTS_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)

    page = _render(f"http://{proxy}/", shots / "proxy.png")
    cards = page.text("cards")
    assert "Workers | 2 | 2 serving · 1 model" in cards, cards
    assert "Requests | 1 |" in cards, cards
    assert "Succeeded | 1 |" in cards, cards
    rows = page.text("workers")
    assert rows.count(MODEL) == 2 and rows.count("serving") == 2, rows
    assert "fake" in rows, rows  # the workers' TEE
    assert "balanced" in page.text("ledger"), page.text("ledger")
    assert "Committed to chain | seqno" in page.text("chain"), page.text("chain")

    served = 0
    for index, address in enumerate(workers):
        page = _render(f"http://{address}/", shots / f"worker-{index}.png")
        assert page.text("model") == MODEL
        cards = page.text("cards")
        assert "Backend | healthy" in cards, cards
        served += int(re.search(r"Succeeded \| (\d+)", cards).group(1))
    assert served == 1, "the one request was served by one worker"

    page = _render(f"http://127.0.0.1:{dash_devnet.port}/", shots / "client.png")
    cards = page.text("cards")
    assert "Requests | 1 |" in cards, cards
    assert f"Spent | {SPENT}" in cards, cards
    assert "connected" in page.text("proxies"), page.text("proxies")
    assert "normal" in page.text("contracts"), page.text("contracts")


def test_the_grafana_dashboard_uses_only_metrics_the_daemons_serve(dash_devnet):
    dashboard = json.loads((REPO_ROOT / "docs" / "grafana" / "cocoon.json").read_text())
    variables = [v["name"] for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variables == ["datasource"], "one Prometheus datasource variable"
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    used = set(re.findall(r"\bcocoon_[a-z_]+", " ".join(exprs)))
    proxy, workers = _stats_ports(dash_devnet.log_path)
    served = set()
    for address in [proxy, workers[0], f"127.0.0.1:{dash_devnet.port}"]:
        status, _, text = _http("GET", f"http://{address}/metrics")
        assert status == 200
        served |= set(re.findall(r"^(cocoon_[a-z_]+)", text.decode(), re.M))
    assert used, "the dashboard queries cocoon metrics"
    assert used <= served, f"not served by any daemon: {sorted(used - served)}"
    assert served <= used, f"served but on no panel: {sorted(served - used)}"
