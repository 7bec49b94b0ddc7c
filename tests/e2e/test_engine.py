"""End to end with a real model: the `openai` SDK against `cocoon devnet` serving
SmolLM2-135M-Instruct with the built-in engine (pulled into $COCOON_MODELS by scripts/test.sh).

Token counts are pinned to llama.cpp's for the same model and prompt (16 prompt tokens for the
capital question in ChatML; the answer "The capital of France is Paris." is 7 tokens).
"""
import openai
import pytest

from test_openai_sdk import run_devnet

MODEL = "SmolLM2-135M-Instruct"
CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]
ANSWER = "The capital of France is Paris."


@pytest.fixture(scope="module")
def engine_devnet(tmp_path_factory, pytestconfig):
    yield from run_devnet(tmp_path_factory, pytestconfig, [], MODEL)


@pytest.fixture(scope="module")
def llm(engine_devnet):
    c = openai.OpenAI(base_url=engine_devnet.base_url, api_key="unused", max_retries=0, timeout=60)
    yield c
    c.close()


def test_lists_the_model(llm):
    assert MODEL in [m.id for m in llm.models.list().data]


def test_answers_the_capital_question_with_exact_usage(llm):
    r = llm.chat.completions.create(model=MODEL, messages=CAPITAL, temperature=0)
    assert r.choices[0].message.content == ANSWER
    assert r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (16, 7, 23)


def test_streams_token_by_token_with_usage(llm):
    stream = llm.chat.completions.create(
        model=MODEL, messages=CAPITAL, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage, finish = [], None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert "".join(pieces) == ANSWER
    assert len(pieces) == 7, f"one piece per token: {pieces}"
    assert finish == "stop"
    assert (usage.prompt_tokens, usage.completion_tokens) == (16, 7)


def test_max_tokens_cuts_the_answer_with_length(llm):
    r = llm.chat.completions.create(model=MODEL, messages=CAPITAL, temperature=0, max_tokens=3)
    assert r.choices[0].message.content == "The capital of"
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3


def test_plain_completion(llm):
    r = llm.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=2, temperature=0)
    assert r.choices[0].text == " Paris."
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (5, 2)


def test_chat_template_kwargs_are_accepted(llm):
    # Qwen3's switch; SmolLM2's template does not read it, so the answer is the same.
    r = llm.chat.completions.create(
        model=MODEL, messages=CAPITAL, temperature=0,
        extra_body={"chat_template_kwargs": {"enable_thinking": False}},
    )
    assert r.choices[0].message.content == ANSWER
    assert r.usage.prompt_tokens == 16


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"n": 2}, "'n'"),
        ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tools"),
    ],
)
def test_what_the_engine_cannot_do_is_refused_by_name(llm, fields, named):
    """Asked for several choices, log probabilities, JSON mode or tools, the built-in engine
    says which field it cannot honour instead of quietly answering without it."""
    with pytest.raises(openai.BadRequestError) as info:
        llm.chat.completions.create(model=MODEL, messages=CAPITAL, extra_body=fields)
    assert info.value.status_code == 400
    assert named in str(info.value), str(info.value)
