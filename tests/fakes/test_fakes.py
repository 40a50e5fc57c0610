"""The fakes speak their protocols as the real client libraries expect (so other tests can trust them)."""
from __future__ import annotations

import anthropic
import ollama
import openai
import pytest

from tests.fakes import bundled_gguf, hosted_server, ollama_server, tool_responder


def test_hosted_fake_with_the_openai_and_anthropic_sdks():
    with hosted_server() as fake:
        oa = openai.OpenAI(base_url=fake.url + "/v1", api_key="x", max_retries=0)
        assert oa.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]
                                          ).choices[0].message.content == "[m] you said: hi"
        an = anthropic.Anthropic(base_url=fake.url, api_key="x", max_retries=0)
        with an.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "yo"}]) as s:
            assert "".join(s.text_stream) == "[m] you said: yo"
        fake.responder = tool_responder("Read", {"path": "a.py"})
        msg = an.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "read"}])
        assert msg.content[0].input == {"path": "a.py"}
        fake.fail("status", status=429)
        with pytest.raises(openai.RateLimitError):
            oa.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert [m.id for m in oa.models.list()] == ["fake-strong", "fake-weak"]


def test_ollama_fake_create_from_blob_then_chat_with_real_inference(tmp_path):
    with ollama_server(models={}) as fake:
        client = ollama.Client(host=fake.url)
        assert client.list().models == []
        digest = client.create_blob(bundled_gguf())
        assert digest.startswith("sha256:")
        progress = [p.status for p in client.create(
            model="engrain-coder", files={"model.gguf": digest}, system="You are terse.",
            template="{{ .Prompt }}", parameters={"stop": ["<|im_end|>"], "temperature": 0}, stream=True)]
        assert progress[-1] == "success"
        assert [m.model for m in client.list().models] == ["engrain-coder:latest"]
        shown = client.show("engrain-coder")
        assert 'SYSTEM """You are terse."""' in shown.modelfile and "stop" in shown.parameters
        assert shown.modelinfo["general.architecture"] == "llama"
        parts = list(client.chat(model="engrain-coder", messages=[{"role": "user", "content": "Say hi."}],
                                 options={"num_predict": 8}, stream=True))
        assert parts[-1].done and parts[-1].eval_count > 0
        assert "".join(p.message.content for p in parts).strip()
        gen = client.generate(model="engrain-coder", prompt="2+2=", options={"num_predict": 4})
        assert gen.done and gen.response
        with pytest.raises(ollama.ResponseError) as err:
            client.create(model="broken", files={"model.gguf": "sha256:" + "0" * 64})
        assert err.value.status_code == 400
        with pytest.raises(ollama.ResponseError) as err:
            client.chat(model="missing", messages=[{"role": "user", "content": "hi"}])
        assert err.value.status_code == 404
