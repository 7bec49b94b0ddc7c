"""End-to-end test: the real `openai` Python SDK against `cocoon devnet`.

`cocoon devnet` runs proxy, worker and client in one process on loopback, with
the built-in deterministic mock backend (model `mock-model`). Its rules:

* prompt_tokens = whitespace-separated words in all message `content` strings
  (chat) or in `prompt` (completions), at least 1;
* completion_tokens = min(8, max_tokens if given);
* finish_reason is "length" when max_tokens < 8 cut the answer, else "stop";
* streaming sends one chunk per token, then a chunk with finish_reason, then a
  usage-only chunk (`choices: []`) only when stream_options.include_usage is
  true, then `data: [DONE]`.

The binary is `$COCOON_BIN`, default `target/debug/cocoon` under the repo root.
Run through tests/e2e/run.sh, or directly: `pytest -q tests/e2e`.
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = "mock-model"
STARTUP_TIMEOUT_S = 60
SHUTDOWN_TIMEOUT_S = 15

# Everything stays on loopback: never let a proxy from the environment in.
os.environ["NO_PROXY"] = "127.0.0.1,localhost"
os.environ["no_proxy"] = "127.0.0.1,localhost"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _cocoon_bin() -> Path:
    raw = os.environ.get("COCOON_BIN", "target/debug/cocoon")
    path = Path(raw)
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, body=None, timeout: float = 5.0):
    """Plain urllib request; returns (status, headers, body bytes)."""
    data = None
    headers = {}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with _DIRECT.open(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def _model_ids(body: bytes):
    doc = json.loads(body)
    return [m.get("id") for m in doc.get("data") or []]


def _log_tail(path: Path, limit: int = 20_000) -> str:
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as e:
        return f"(could not read {path}: {e})"
    return text[-limit:]


class Devnet:
    def __init__(self, port: int, proc: subprocess.Popen, log_path: Path):
        self.port = port
        self.proc = proc
        self.log_path = log_path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


# What `cocoon devnet` prints once everything is started and its configs are written.
READY_BANNER = b"Cocoon devnet is up"


def run_devnet(tmp_path_factory, pytestconfig, extra_args, model):
    """Starts `cocoon devnet EXTRA_ARGS`, waits until it lists MODEL and has printed its
    ready banner, yields a Devnet, then stops it with SIGTERM and checks it exits cleanly."""
    binary = _cocoon_bin()
    if not binary.is_file():
        pytest.fail(
            f"cocoon binary not found at {binary}; build it with "
            "`cargo build -p cocoon` or point COCOON_BIN at it",
            pytrace=False,
        )

    work = tmp_path_factory.mktemp("devnet")
    data_dir = work / "data"
    data_dir.mkdir()
    log_path = work / "devnet.log"
    pytestconfig._cocoon_devnet_log = log_path  # read by conftest.py on failures
    port = _free_port()
    cmd = [
        str(binary), "devnet", *extra_args,
        "--client-port", str(port),
        "--data-dir", str(data_dir),
    ]
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        cwd=str(REPO_ROOT),
    )

    def _abort(msg: str):
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        pytest.fail(
            f"{msg}\ncommand: {' '.join(cmd)}\n--- devnet log ---\n"
            + _log_tail(log_path),
            pytrace=False,
        )

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = "no answer yet"
    while True:
        if proc.poll() is not None:
            _abort(f"cocoon devnet exited early with code {proc.returncode}")
        try:
            status, _, body = _http("GET", f"http://127.0.0.1:{port}/v1/models", timeout=2)
            if status != 200 or model not in _model_ids(body):
                last = f"HTTP {status}: {body[:300]!r}"
            elif READY_BANNER not in log_path.read_bytes():
                # The client API answers before the devnet has written its configs
                # (data/*.toml); the banner comes after them, as a user sees it.
                last = f"{model!r} is listed but the log has no {READY_BANNER!r} yet"
            else:
                break
        except (OSError, ValueError) as e:  # not listening yet / not JSON yet
            last = repr(e)
        if time.monotonic() > deadline:
            _abort(
                f"devnet did not list {model!r} at /v1/models within "
                f"{STARTUP_TIMEOUT_S}s (last: {last})"
            )
        time.sleep(0.2)

    yield Devnet(port, proc, log_path)

    # Graceful shutdown: SIGTERM must end it, cleanly, within the limit.
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        log.close()
        pytest.fail(
            f"cocoon devnet did not exit within {SHUTDOWN_TIMEOUT_S}s of SIGTERM",
            pytrace=False,
        )
    log.close()
    assert code == 0, f"cocoon devnet exited with code {code} after SIGTERM"


@pytest.fixture(scope="session")
def devnet(tmp_path_factory, pytestconfig):
    yield from run_devnet(tmp_path_factory, pytestconfig, ["--mock"], MODEL)


@pytest.fixture(scope="session")
def client(devnet):
    # No retries: a 4xx/5xx must surface as it is, not be retried and hidden.
    c = openai.OpenAI(base_url=devnet.base_url, api_key="unused", max_retries=0, timeout=30)
    yield c
    c.close()


CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]  # 6 words


def _assert_usage(usage, prompt, completion):
    assert usage is not None, "usage missing"
    assert usage.prompt_tokens == prompt
    assert usage.completion_tokens == completion
    assert usage.total_tokens == prompt + completion


# ---------------------------------------------------------------- models


def test_models_list_contains_mock_model(client):
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids


def test_models_content_type_is_json(devnet):
    status, headers, body = _http("GET", f"{devnet.base_url}/models")
    assert status == 200
    ctype = headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip().lower() == "application/json", ctype
    doc = json.loads(body)
    assert doc["object"] == "list"
    assert MODEL in _model_ids(body)


# ---------------------------------------------------------- chat, non-stream


def test_chat_non_stream(client):
    resp = client.chat.completions.create(model=MODEL, messages=CAPITAL)
    assert resp.object == "chat.completion"
    assert len(resp.choices) == 1
    choice = resp.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content, "empty content"
    assert choice.finish_reason == "stop"
    _assert_usage(resp.usage, 6, 8)


def test_chat_max_tokens_limits_completion(client):
    resp = client.chat.completions.create(model=MODEL, messages=CAPITAL, max_tokens=3)
    choice = resp.choices[0]
    assert choice.message.content, "empty content"
    assert choice.finish_reason == "length"
    _assert_usage(resp.usage, 6, 3)


# -------------------------------------------------------------- chat, stream


def test_chat_stream_without_usage(client):
    stream = client.chat.completions.create(model=MODEL, messages=CAPITAL, stream=True)
    chunks = list(stream)
    content_chunks = [
        c for c in chunks if c.choices and c.choices[0].delta and c.choices[0].delta.content
    ]
    assert len(content_chunks) >= 8, f"only {len(content_chunks)} content chunks"
    for c in chunks:
        assert c.object == "chat.completion.chunk"
        assert c.usage is None, f"unexpected usage chunk without include_usage: {c}"
        assert c.choices, f"unexpected choice-less chunk without include_usage: {c}"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert "".join(c.choices[0].delta.content for c in content_chunks)


def test_chat_stream_with_include_usage(client):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=CAPITAL,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert len(chunks) >= 2
    last = chunks[-1]
    assert last.choices == [], f"usage chunk has choices: {last.choices}"
    _assert_usage(last.usage, 6, 8)
    # Only the final chunk carries usage.
    for c in chunks[:-1]:
        assert c.usage is None, f"usage before the final chunk: {c}"
    content = [c for c in chunks[:-1] if c.choices and c.choices[0].delta.content]
    assert len(content) >= 8
    for c in chunks[:-1]:
        assert c.choices, f"choice-less chunk before the usage chunk: {c}"
    finishes = [c.choices[0].finish_reason for c in chunks[:-1] if c.choices[0].finish_reason]
    assert finishes == ["stop"]


def test_chat_stream_arrives_incrementally(client):
    """The SDK must see the stream as separate chunk objects, one at a time."""
    seen = 0
    with client.chat.completions.create(model=MODEL, messages=CAPITAL, stream=True) as stream:
        for chunk in stream:
            assert chunk.object == "chat.completion.chunk"
            seen += 1
    assert seen > 1, f"stream produced {seen} chunk object(s)"


def test_chat_stream_raw_is_sse(devnet):
    status, headers, body = _http(
        "POST",
        f"{devnet.base_url}/chat/completions",
        {"model": MODEL, "messages": CAPITAL, "stream": True},
        timeout=30,
    )
    assert status == 200, body[:500]
    ctype = headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip().lower() == "text/event-stream", ctype
    events = [e for e in body.decode().split("\n\n") if e.strip()]
    assert events[-1].strip() == "data: [DONE]"
    assert len(events) >= 10  # 8 tokens + finish chunk + [DONE]


# ----------------------------------------------------------- completions


def test_completions_usage(client):
    resp = client.completions.create(model=MODEL, prompt="Say hello to the world", max_tokens=5)
    assert len(resp.choices) == 1
    assert resp.choices[0].text, "empty text"
    assert resp.choices[0].finish_reason == "length"
    _assert_usage(resp.usage, 5, 5)


# ---------------------------------------------------------------- errors


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=CAPITAL)
    assert info.value.status_code == 404


def test_unknown_body_field_is_400(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL, messages=CAPITAL, extra_body={"bogus_field": 1}
        )
    assert info.value.status_code == 400


def test_chat_template_kwargs_pass_through_the_network(client):
    # Refused as an unknown field before; backends (vLLM, SGLang, llama.cpp) read it.
    resp = client.chat.completions.create(
        model=MODEL, messages=CAPITAL,
        extra_body={"chat_template_kwargs": {"enable_thinking": False}},
    )
    assert resp.choices[0].message.content
    _assert_usage(resp.usage, 6, 8)


def test_still_serving_after_errors(client):
    """Errors above must not have broken the chain."""
    resp = client.chat.completions.create(model=MODEL, messages=CAPITAL, max_tokens=1)
    _assert_usage(resp.usage, 6, 1)
    assert resp.choices[0].finish_reason == "length"


# ------------------------------------------------- sealed to the worker (e2e)


def test_requests_are_sealed_to_the_worker_by_default(client):
    """The devnet's client seals each request to the worker (e2e = "preferred"): the answer says
    so in X-Cocoon-E2E, and is what an unsealed one would be, usage exact."""
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=CAPITAL)
    assert raw.headers.get("x-cocoon-e2e") == "on"
    resp = raw.parse()
    assert resp.choices[0].message.content
    _assert_usage(resp.usage, 6, 8)

    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=CAPITAL,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers.get("x-cocoon-e2e") == "on"
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    usage = [c.usage for c in chunks if c.usage]
    assert len(usage) == 1
    _assert_usage(usage[0], 6, 8)


def test_sealed_answers_carry_the_workers_signed_receipt(client):
    """Each sealed answer comes with the worker's signed receipt: in X-Cocoon-Receipt for a
    whole answer, in a last chunk (before [DONE]) for a stream that asks for usage. The client
    checked it (X-Cocoon-Receipt-Check: ok), and `cocoon receipt verify` proves it on its own."""
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=CAPITAL)
    assert raw.headers.get("x-cocoon-receipt-check") == "ok"
    receipt = raw.headers["x-cocoon-receipt"]
    total = raw.parse().usage.total_tokens
    verified = subprocess.run(
        [str(_cocoon_bin()), "receipt", "verify", receipt, "--charged", str(total)],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, "COCOON_LOG": "error"},
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "signature        valid" in verified.stdout
    assert f"total {total} (as billed)" in verified.stdout
    over = subprocess.run(
        [str(_cocoon_bin()), "receipt", "verify", receipt, "--charged", str(total + 1)],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, "COCOON_LOG": "error"},
    )
    assert over.returncode != 0 and "OVER-CHARGED" in over.stdout

    stream = client.chat.completions.create(
        model=MODEL, messages=CAPITAL, stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)
    receipts = [c for c in chunks if (c.model_extra or {}).get("cocoon_receipt")]
    assert len(receipts) == 1 and receipts[0] is chunks[-1], [c.model_extra for c in chunks]
    assert receipts[0].model_extra["cocoon_receipt_check"] == "ok"
    assert receipts[0].choices == []
