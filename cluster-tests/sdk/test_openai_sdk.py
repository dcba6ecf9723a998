"""The official OpenAI Python SDK against a running Tollgate node."""

import openai
import pytest

from conftest import MASTER_KEY


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=MASTER_KEY, max_retries=0)


def test_chat(client):
    response = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}], max_tokens=4
    )
    assert response.object == "chat.completion"
    assert response.choices[0].message.role == "assistant"
    assert len(response.choices[0].message.content.split()) == 4
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 4
    assert response.usage.total_tokens == response.usage.prompt_tokens + 4


def test_chat_headers(client):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-tollgate-model-group"] == "gpt-4o-mini"
    assert raw.headers["x-request-id"]
    assert raw.parse().choices[0].message.content


def test_chat_stream(client):
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Tell me"}], max_tokens=6, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 6
    assert all(c.choices for c in chunks), "no usage-only chunk unless asked for"
    assert chunks[-1].choices[0].finish_reason == "length"


def test_chat_stream_with_usage(client):
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Tell me"}],
        max_tokens=3,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 3


def test_embeddings(client):
    response = client.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
    assert len(response.data) == 2
    assert len(response.data[0].embedding) > 0
    assert response.usage.prompt_tokens > 0


def test_models(client):
    ids = [m.id for m in client.models.list()]
    assert ids == ["gpt-4o-mini", "text-embedding-3-small", "limited", "priced"]
    model = client.models.retrieve("gpt-4o-mini")
    assert model.id == "gpt-4o-mini"


def test_authentication_error(gateway):
    bad = openai.OpenAI(base_url=f"{gateway}/v1", api_key="sk-not-a-real-key-123", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.models.list()
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"
    assert "sk-not-a-real-key-123" not in str(info.value)


def test_bad_request_error(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages="not a list")
    assert info.value.status_code == 400
    assert info.value.param == "messages"


def test_not_found_error(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_rate_limit_error(client):
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="limited", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "1"
    assert info.value.code == "rate_limit_exceeded"


def _generate_key(gateway, **settings):
    """A virtual key from the LiteLLM-compatible management route."""
    import json
    import urllib.request

    request = urllib.request.Request(
        f"{gateway}/key/generate",
        data=json.dumps(settings).encode(),
        headers={"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)["key"]


def test_budget_exceeded_is_bad_request(gateway):
    key = _generate_key(gateway, max_budget=0.00001)
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="priced", messages=[{"role": "user", "content": "hi"}], max_tokens=50
        )
    assert caught.value.code == "budget_exceeded"
    assert "limit $0.000010" in caught.value.message
    assert key not in caught.value.message


def test_our_rate_limit_is_rate_limit_error(gateway):
    key = _generate_key(gateway, rpm_limit=1)
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=key, max_retries=0)
    client.chat.completions.create(model="priced", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="priced", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "rate_limit_exceeded"
    assert int(caught.value.response.headers["retry-after"]) >= 1
    assert caught.value.response.headers["x-ratelimit-limit-requests"] == "1"


def test_a_key_lists_only_its_models(gateway):
    key = _generate_key(gateway, models=["priced"])
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=key, max_retries=0)
    assert [m.id for m in client.models.list()] == ["priced"]
    assert client.models.retrieve("priced").id == "priced"
    with pytest.raises(openai.PermissionDeniedError):
        client.models.retrieve("gpt-4o-mini")
