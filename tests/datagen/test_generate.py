"""Headless generation and the model judge, against a loopback server that speaks the OpenAI chat API, through
litellm (the real client)."""
from __future__ import annotations

import json

import datagen
from tests.datagen.conftest import tool_example, varied


def _fenced(record: dict) -> str:
    return "Here is the example:\n```json\n" + json.dumps(record) + "\n```"


def test_generate_stores_valid_answers_and_retries_after_bad_ones(ws, cli, fake_openai):
    datagen.add_knowledge(ws, [_guide(ws)])
    server = fake_openai([
        "I cannot write that.",                                      # no JSON: rejected, retried
        _fenced({**varied(1), "category": "tool-use"}),
        json.dumps({**tool_example(), "category": "whatever"}),     # category is forced to the requested one
        json.dumps(tool_example(pattern="def broken", category="tool-use") | {"tools": []}),  # undeclared tool
        _fenced({**varied(2), "category": "tool-use"}),
    ])

    result = cli("generate", "--category", "tool-use", "--count", "3", "--model", "openai/fake-writer",
                 "--workers", "2", "--api-base", server.api_base, "-w", ws.root)

    assert result.exit_code == 0, result.output
    assert "3/3 accepted" in result.stdout
    assert "no JSON object" in result.stdout and "undeclared tool 'Grep'" in result.stdout
    page = datagen.list_examples(ws, category="tool-use")
    assert page.total == 3
    assert {s.generator for s in page.items} == {"generate:openai/fake-writer"}
    first = server.requests[0]
    brief = json.loads(first["messages"][1]["content"])
    assert first["model"] == "fake-writer"
    assert brief["category"] == "tool-use" and brief["knowledge"] and brief["format"]
    retried = [r for r in server.requests if "previous example was rejected" in r["messages"][1]["content"]]
    assert retried


def test_generate_exits_1_when_the_model_never_gives_a_valid_example(ws, cli, fake_openai):
    server = fake_openai(["no json here"])
    result = cli("generate", "-c", "collaboration", "-n", "2", "-m", "openai/fake", "-k", "1",
                 "--api-base", server.api_base, "-w", ws.root)
    assert result.exit_code == 1
    assert "0/2 accepted, 6 rejected" in result.stdout


def test_judge_records_suggestions_without_changing_status(ws, cli, fake_openai):
    verdicts = datagen.submit(ws, [varied(10), varied(11)])
    server = fake_openai([json.dumps({"verdict": "reject", "score": 0.2, "notes": "too vague"}),
                          "```json\n{\"verdict\": \"approve\", \"score\": 0.9, \"notes\": \"clear\"}\n```"])

    result = cli("review", "--judge", "openai/fake-judge", "--api-base", server.api_base, "-w", ws.root)

    assert result.exit_code == 0, result.output
    assert "2 suggestions recorded" in result.stdout
    for verdict, expected in zip(verdicts, ("reject", "approve")):
        stored = datagen.get_example(ws, verdict.id)
        assert stored.status == "pending"
        [event] = stored.reviews
        assert (event.kind, event.verdict, event.reviewer) == ("suggestion", expected, "judge:openai/fake-judge")
    assert "craftsmanship" in server.requests[0]["messages"][1]["content"]


def _guide(ws):
    path = ws.root / "CLAUDE.md"
    path.write_text("# Guide\n\n## Search first\n\nAlways Grep before you Read.\n", encoding="utf-8")
    return path
