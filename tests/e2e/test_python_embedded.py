"""The Python recipe (clients/python/cocoon_embedded.py): an app starts the COCOON client as
its own child process and talks to it with the openai SDK, against a devnet's proxy."""
import sys
from pathlib import Path

import openai
import pytest

from test_openai_sdk import REPO_ROOT, _cocoon_bin, run_devnet

sys.path.insert(0, str(REPO_ROOT / "clients" / "python"))
from cocoon_embedded import CocoonClient, CocoonClientError  # noqa: E402

MODEL = "mock-model"


@pytest.fixture(scope="module")
def free_devnet(tmp_path_factory, pytestconfig):
    yield from run_devnet(tmp_path_factory, pytestconfig, ["--mock", "--free"], MODEL)


def test_an_app_runs_its_own_client_and_uses_the_openai_sdk(free_devnet):
    config = free_devnet.log_path.parent / "data" / "client.toml"
    assert config.is_file(), "the devnet writes the client's config"
    with CocoonClient(str(config), binary=str(_cocoon_bin())) as cocoon:
        assert cocoon.port != free_devnet.port, "its own client, not the devnet's"
        answer = cocoon.openai.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "three little words"}])
        assert answer.usage.prompt_tokens == 3
        assert answer.choices[0].message.content
        pieces = [c.choices[0].delta.content or "" for c in cocoon.openai.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True) if c.choices]
        assert "".join(pieces) == answer.choices[0].message.content
        with pytest.raises(openai.NotFoundError):
            cocoon.openai.chat.completions.create(
                model="no-such-model", messages=[{"role": "user", "content": "x"}])
        proc = cocoon._proc
    assert proc.returncode == 0, "stopped cleanly by SIGTERM"


def test_a_client_that_cannot_start_says_why(tmp_path):
    bad = tmp_path / "client.toml"
    bad.write_text("not = [valid")
    with pytest.raises(CocoonClientError) as info:
        CocoonClient(str(bad), binary=str(_cocoon_bin()), ready_timeout=20).start()
    assert "invalid config" in str(info.value)
