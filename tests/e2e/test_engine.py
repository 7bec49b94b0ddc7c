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
    # The cost in nano-TON, as the reference's worker adds it: the devnet's root charges 20 a
    # token and the worker's coefficient is 1.0×.
    cost = r.usage.model_extra
    assert (cost["prompt_total_cost"], cost["completion_total_cost"], cost["total_cost"]) == (16 * 20, 7 * 20, 23 * 20)


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
    assert usage.model_extra["total_cost"] == 23 * 20


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


# ---------------------------------------------------------------- embeddings


def _norm(vector):
    return sum(v * v for v in vector) ** 0.5


def _cosine(a, b):
    return sum(x * y for x, y in zip(a, b))


def test_embeddings_are_normalised_and_the_same_text_gives_the_same_vector(llm):
    """`/v1/embeddings` through the whole network: the engine mean-pools its final hidden
    states and normalises them, as llama.cpp's server does. The SDK asks for base64 by default;
    the float form must decode to the same numbers."""
    texts = ["The capital of France is Paris.", "Paris is the capital city of France.", "I like green bananas."]
    r = llm.embeddings.create(model=MODEL, input=texts)
    assert [d.index for d in r.data] == [0, 1, 2]
    vectors = [d.embedding for d in r.data]
    assert {len(v) for v in vectors} == {576}, "SmolLM2-135M's hidden size"
    for v in vectors:
        assert abs(_norm(v) - 1.0) < 1e-4
    assert r.usage.prompt_tokens == r.usage.total_tokens > 0
    again = llm.embeddings.create(model=MODEL, input=texts[0], encoding_format="float")
    assert max(abs(x - y) for x, y in zip(again.data[0].embedding, vectors[0])) < 1e-5
    # Each input is embedded on its own: alone or in a batch, the same vector.
    assert again.usage.prompt_tokens < r.usage.prompt_tokens
    # Not a constant vector: different texts differ.
    assert _cosine(vectors[0], vectors[2]) < 0.9999


def test_embeddings_refuse_what_they_cannot_do_by_name(llm):
    with pytest.raises(openai.BadRequestError) as info:
        llm.embeddings.create(model=MODEL, input="x", dimensions=64)
    assert "dimensions" in str(info.value)
    with pytest.raises(openai.BadRequestError) as info:
        llm.embeddings.create(model=MODEL, input=[])
    assert "input" in str(info.value)


# ---------------------------------------------------------------- responses


def test_responses_plain_translates_onto_chat(llm):
    r = llm.responses.create(model=MODEL, input="What is the capital of France?", temperature=0)
    assert r.status == "completed"
    assert r.output_text == ANSWER
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (16, 7, 23)
    assert r.usage.model_extra["total_cost"] == 23 * 20, "the cost travels into the Responses usage"
    cut = llm.responses.create(model=MODEL, input=CAPITAL, temperature=0, max_output_tokens=3)
    assert cut.status == "incomplete"
    assert cut.incomplete_details.reason == "max_output_tokens"
    assert cut.usage.output_tokens == 3


def test_responses_stream_events_add_up_to_the_answer(llm):
    events = list(llm.responses.create(
        model=MODEL, input=CAPITAL, instructions=None, temperature=0, stream=True,
    ))
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
    ]
    assert kinds[-1] == "response.completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == ANSWER
    assert len(deltas) == 7, "one event per token"
    done = events[-1].response
    assert done.output_text == ANSWER
    assert (done.usage.input_tokens, done.usage.output_tokens) == (16, 7)
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_responses_refuse_tools_by_name(llm):
    with pytest.raises(openai.BadRequestError) as info:
        llm.responses.create(model=MODEL, input="hi", previous_response_id="resp_x")
    assert "previous_response_id" in str(info.value)
