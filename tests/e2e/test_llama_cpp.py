"""End to end with a real external backend: the `openai` SDK → `cocoon devnet --backend` →
worker → llama.cpp's OpenAI-compatible server (llama-cpp-python) serving SmolLM2-135M-Instruct.

llama-cpp-python applies the GGUF's chat template, which adds SmolLM2's default system prompt:
the capital question is 37 prompt tokens there (16 with the built-in engine, which leaves that
system prompt out). Non-streamed answers carry llama.cpp's usage and the worker bills it as is;
its streams carry none (it ignores `include_usage`), so the worker bills an estimate: one
completion token per text event, which is exact for llama.cpp's one-event-per-token streams.
"""
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import openai
import pytest

from test_openai_sdk import run_devnet

MODEL = "SmolLM2-135M-Instruct"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]
STARTUP_TIMEOUT_S = 120


def _model_path() -> Path:
    cache = os.environ.get("COCOON_MODELS") or str(Path.home() / ".cache" / "cocoon" / "models")
    path = Path(cache) / GGUF
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `cocoon model pull` (scripts/test.sh does)", pytrace=False)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(_model_path()), "--model_alias", MODEL,
            "--host", "127.0.0.1", "--port", str(port),
            "--n_threads", "2", "--n_ctx", "2048",
            # By default a new request cuts off the one streaming; queue them instead.
            "--interrupt_requests", "False",
        ],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            log.close()
            pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log_path.read_text()[-5000:]}", pytrace=False)
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as r:
                if MODEL in r.read().decode():
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"llama_cpp.server did not start:\n{log_path.read_text()[-5000:]}", pytrace=False)
        time.sleep(0.3)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def backend_devnet(tmp_path_factory, pytestconfig, llama_server):
    yield from run_devnet(tmp_path_factory, pytestconfig, ["--backend", llama_server], MODEL)


@pytest.fixture(scope="module")
def llm(backend_devnet):
    c = openai.OpenAI(base_url=backend_devnet.base_url, api_key="unused", max_retries=0, timeout=120)
    yield c
    c.close()


def _stream_pieces(llm, **kwargs):
    pieces, finish = [], None
    for chunk in llm.chat.completions.create(model=MODEL, stream=True, **kwargs):
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish = choice.finish_reason or finish
    return pieces, finish


def test_usage_of_llama_cpp_passes_through_the_worker(llm):
    r = llm.chat.completions.create(model=MODEL, messages=CAPITAL, temperature=0, max_tokens=24)
    assert r.choices[0].message.content
    assert r.usage.prompt_tokens == 37, "the template's system prompt + the question"
    assert 1 <= r.usage.completion_tokens <= 24
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_a_stream_gives_the_same_greedy_text_and_is_billed_by_its_tokens(llm, backend_devnet):
    whole = llm.chat.completions.create(model=MODEL, messages=CAPITAL, temperature=0, max_tokens=24)
    pieces, finish = _stream_pieces(llm, messages=CAPITAL, temperature=0, max_tokens=24)
    assert "".join(pieces) == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason
    assert len(pieces) == whole.usage.completion_tokens, "llama.cpp streams one event per token"
    # The worker billed the stream by its text events: exactly the completion tokens.
    deadline = time.monotonic() + 10
    while True:
        log = backend_devnet.log_path.read_text(errors="replace")
        billed = [
            int(m.group(1))
            for line in log.splitlines() if "carried no usage" in line
            for m in [re.search(r"completion_tokens=(\d+)", line)] if m
        ]
        if billed or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert billed and billed[-1] == whole.usage.completion_tokens, log[-3000:]


def test_streams_from_several_clients_at_once_all_finish(llm):
    import concurrent.futures

    questions = [f"Name a colour, number {i}." for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(
            lambda q: _stream_pieces(llm, messages=[{"role": "user", "content": q}], temperature=0, max_tokens=8),
            questions,
        ))
    for pieces, finish in results:
        assert pieces and finish in ("stop", "length")
