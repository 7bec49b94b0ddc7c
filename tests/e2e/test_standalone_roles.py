"""Each role runs alone from its TOML config: mock backend, proxy, worker and client as four
separate `cocoon` processes, driven by the real `openai` SDK. Also: a broken config is refused
with a clear message and a non-zero exit before any port is bound.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import openai
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _bin() -> str:
    raw = Path(os.environ.get("COCOON_BIN", "target/debug/cocoon"))
    return str(raw if raw.is_absolute() else REPO_ROOT / raw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def roles(tmp_path):
    ports = {name: _free_port() for name in ["backend", "clients", "workers", "proxy_http", "worker_http", "api"]}
    (tmp_path / "proxy.toml").write_text(
        f"""
client_listen = "127.0.0.1:{ports['clients']}"
worker_listen = "127.0.0.1:{ports['workers']}"
http_listen = "127.0.0.1:{ports['proxy_http']}"
pow_difficulty = 12

[tee]
kind = "danger_fake"

[worker_policy]
policy = "danger_fake_tdx"
"""
    )
    (tmp_path / "worker.toml").write_text(
        f"""
proxies = ["127.0.0.1:{ports['workers']}"]
backend_url = "http://127.0.0.1:1"
model = "standalone-model"
http_listen = "127.0.0.1:{ports['worker_http']}"
backend_check_secs = 0.2

[tee]
kind = "tdx"  # overridden by --tee fake below

[proxy_policy]
policy = "danger_fake_tdx"
"""
    )
    (tmp_path / "client.toml").write_text(
        f"""
proxies = ["127.0.0.1:{ports['clients']}"]
listen = "127.0.0.1:1"

[proxy_policy]
policy = "danger_fake_tdx"
"""
    )
    commands = [
        [_bin(), "mock-backend", "--listen", f"127.0.0.1:{ports['backend']}", "--model", "standalone-model"],
        [_bin(), "proxy", "--config", str(tmp_path / "proxy.toml")],
        # --backend, --tee and --port override the configs' deliberately wrong values.
        [_bin(), "worker", "--config", str(tmp_path / "worker.toml"), "--backend", f"http://127.0.0.1:{ports['backend']}", "--tee", "fake"],
        [_bin(), "client", "--config", str(tmp_path / "client.toml"), "--port", str(ports["api"])],
    ]
    processes = []
    for index, command in enumerate(commands):
        log = open(tmp_path / f"role-{index}.log", "wb")
        processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{ports['api']}/v1", api_key="unused", max_retries=0)
    deadline = time.monotonic() + 60
    while True:
        try:
            if [m.id for m in client.models.list().data] == ["standalone-model"]:
                break
        except openai.APIConnectionError:
            pass
        for index, process in enumerate(processes):
            if process.poll() is not None:
                pytest.fail(f"role {index} exited early:\n" + (tmp_path / f"role-{index}.log").read_text())
        if time.monotonic() > deadline:
            logs = "\n".join((tmp_path / f"role-{i}.log").read_text() for i in range(len(processes)))
            pytest.fail("standalone roles never became ready:\n" + logs)
        time.sleep(0.1)
    yield client
    for process in reversed(processes):
        process.send_signal(signal.SIGTERM)
    for process in processes:
        assert process.wait(timeout=20) == 0


def test_roles_serve_requests_as_separate_processes(roles):
    answer = roles.chat.completions.create(
        model="standalone-model", messages=[{"role": "user", "content": "one two three"}]
    )
    assert answer.usage.prompt_tokens == 3
    assert answer.usage.completion_tokens == 8
    chunks = list(
        roles.chat.completions.create(
            model="standalone-model",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage.total_tokens == 9


TEE = '[tee]\nkind = "danger_fake"\n'
WORKERS_ANY = '[worker_policy]\npolicy = "danger_any"\n'


@pytest.mark.parametrize(
    "role,text,expected",
    [
        ("proxy", "bogus_key = 1\n" + TEE + WORKERS_ANY, "bogus_key"),
        ("proxy", "client_listen = 5\n" + TEE + WORKERS_ANY, "client_listen"),
        ("proxy", "pow_difficulty = 99\n" + TEE + WORKERS_ANY, "pow_difficulty = 99 is outside"),
        ("proxy", "pow_difficulty = 8\n" + TEE, "worker_policy"),
        ("proxy", TEE + '[worker_policy]\npolicy = "tdx"\n', "collateral_dir is required"),
        ("proxy", TEE + '[worker_policy]\npolicy = "danger_fake_tdx"\nimage_hashes = ["xyz"]\n', "image_hashes"),
        ("proxy", '[tee]\nkind = "tdx"\ntsm_report_dir = "/nonexistent/tsm"\n' + WORKERS_ANY, "not an Intel TDX guest"),
        ("proxy", TEE + WORKERS_ANY + '[payments]\nchain = "toncenter"\nledger = "l"\nsigner_key = "s"\nwallet_key = "w"\n', "needs toncenter_url"),
        ("proxy", TEE + WORKERS_ANY + '[payments]\nchain = "local"\nlocal_chain_dir = "/nonexistent"\nledger = "l"\nsigner_key = "s"\nwallet_key = "w"\n', "/nonexistent"),
        ("worker", 'proxies = []\nbackend_url = "ftp://x"\nmodel = ""\n' + TEE + '[proxy_policy]\npolicy = "danger_any"\n', "backend_url"),
        ("client", 'proxies = ["nowhere"]\n[proxy_policy]\npolicy = "trust_me"\n', "policy"),
    ],
)
def test_broken_configs_are_refused_clearly(tmp_path, role, text, expected):
    path = tmp_path / f"{role}.toml"
    path.write_text(text)
    result = subprocess.run([_bin(), role, "--config", str(path)], capture_output=True, timeout=30)
    assert result.returncode != 0
    message = result.stderr.decode()
    assert message.startswith("error: "), message
    assert expected in message, message
