"""`engrain router learn` (acceptance 2): heads learned from what the local model actually did beat the default
head on those prompts, measured by cross-validation. The local model answers over real HTTP (the router's
`openai` provider against a deterministic loopback server); an eval run comes from training's behaviour eval."""
from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

import datagen
import router
from engrain.cli import app
from router import learn
from tests.fakes import Call, Reply, hosted_server
from training import eval as evaluation

runner = CliRunner()
CAPITALS = [("France", "Paris"), ("Japan", "Tokyo"), ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Chile", "Santiago"),
            ("Egypt", "Cairo"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Ghana", "Accra"), ("Nepal", "Kathmandu")]
FUNCS = [("add", "a + b", "add(2, 3) == 5"), ("sub", "a - b", "sub(5, 3) == 2"), ("mul", "a * b", "mul(4, 3) == 12"),
         ("biggest", "max(a, b)", "biggest(4, 9) == 9"), ("smallest", "min(a, b)", "smallest(4, 9) == 4"),
         ("mean2", "(a + b) / 2", "mean2(2, 4) == 3"), ("hyp2", "a * a + b * b", "hyp2(3, 4) == 25"),
         ("avgsq", "(a * a + b * b) / 2", "avgsq(2, 2) == 4"), ("diff", "abs(a - b)", "diff(2, 9) == 7"),
         ("pw", "a ** b", "pw(2, 5) == 32")]


def _local(call: Call) -> Reply:
    """A small model that writes correct short functions but gets every capital wrong."""
    user = next(m["content"] for m in call.messages if m["role"] == "user")
    match = re.search(r"function `(\w+)\(a, b\)` that returns (.+?)\. ", user)
    if match:
        return Reply(text=f"```python\ndef {match.group(1)}(a, b):\n    return {match.group(2)}\n```")
    return Reply(text="Springfield")


def _tasks(path):
    lines = [{"prompt": f"What is the capital of {country}? Answer with the city only.", "answer": city}
             for country, city in CAPITALS]
    lines += [{"prompt": f"Write a Python function `{name}(a, b)` that returns {body}. Handle ints and floats, "
                         f"keep it to one line, and include no explanation, only the code block.",
               "tests": f"assert {check}"} for name, body, check in FUNCS]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def _apgr(output: str) -> tuple[float, float]:
    match = re.search(r"learned ([\d.]+), previous head ([\d.]+)", output)
    assert match, output
    return float(match.group(1)), float(match.group(2))


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    root = tmp_path / "proj"
    datagen.init_workspace(root)
    monkeypatch.chdir(root)
    return root


def test_learn_from_a_graded_task_file_beats_the_default_head(workspace):
    with hosted_server(_local) as fake:
        config = workspace / "router.toml"
        config.write_text(f'''[[models]]\nname = "mine"\nprovider = "openai"\nmodel = "tiny"\napi_base = "{fake.url}/v1"
[[tiers]]\nname = "local"\nmodels = ["mine"]\n[[tiers]]\nname = "hosted"\nmodels = ["mine"]\n''')
        result = runner.invoke(app, ["router", "learn", "--tasks", str(_tasks(workspace / "tasks.jsonl")),
                                     "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "learned from 20 outcomes (10 where the local answer failed)" in result.output
    learned, default = _apgr(result.output)
    assert learned > default and learned > 0.6
    head = json.loads((workspace / ".engrain" / "router" / "head.json").read_text())
    assert head["n"] == 20 and head["positives"] == 10


def _local_or_judge(call: Call) -> Reply:
    """model `tiny`: as _local; model `grader`: a deterministic judge that passes a reply holding the criterion's
    last word (`... names Paris` / `... defines add(`), in the judge's `PASS: reason` format."""
    if call.model != "grader":
        return _local(call)
    rule = re.search(r"Rule: .* (\S+)\n", call.messages[-1]["content"]).group(1)
    reply = call.messages[-1]["content"].split("Assistant reply:\n", 1)[1]
    return Reply(text=f"PASS: it has {rule}" if rule in reply else f"FAIL: no {rule}")


def test_learn_from_a_judge_graded_task_file_beats_the_default_head(workspace):
    lines = [{"prompt": f"What is the capital of {country}? Answer with the city only.", "judge": f"The reply names "
              f"{city}"} for country, city in CAPITALS]
    lines += [{"prompt": f"Write a Python function `{name}(a, b)` that returns {body}. Handle ints and floats, keep it "
                         "to one line, and include no explanation, only the code block.",
               "judge": f"The reply defines {name}("} for name, body, _ in FUNCS]
    tasks = workspace / "tasks.jsonl"
    tasks.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    with hosted_server(_local_or_judge) as fake:
        config = workspace / "router.toml"
        config.write_text(f'''[[models]]\nname = "mine"\nprovider = "openai"\nmodel = "tiny"\napi_base = "{fake.url}/v1"
[[models]]\nname = "judge"\nprovider = "openai"\nmodel = "grader"\napi_base = "{fake.url}/v1"
[[tiers]]\nname = "local"\nmodels = ["mine"]\n[[tiers]]\nname = "hosted"\nmodels = ["judge"]\n''')
        missing = runner.invoke(app, ["router", "learn", "--tasks", str(tasks), "--config", str(config)])
        unknown = runner.invoke(app, ["router", "learn", "--tasks", str(tasks), "--config", str(config),
                                      "--judge", "nobody"])
        result = runner.invoke(app, ["router", "learn", "--tasks", str(tasks), "--config", str(config),
                                     "--judge", "judge"])
        asked = [r.body["model"] for r in fake.requests]
    assert missing.exit_code == 2 and "no judge model is set (--judge)" in missing.output
    assert unknown.exit_code == 2 and "no router deployment named 'nobody'" in unknown.output
    assert asked.count("tiny") == 20 and asked.count("grader") == 20     # nothing asked before the errors above
    assert result.exit_code == 0, result.output
    assert "learned from 20 outcomes (10 where the local answer failed)" in result.output
    learned, default = _apgr(result.output)
    assert learned > default and learned > 0.6


def test_learn_from_an_eval_run_beats_the_default_head(workspace):
    with (workspace / "engrain.toml").open("a", encoding="utf-8") as f:
        f.write('\n[[rules]]\nname = "step0"\nkind = "starts_with"\npattern = "Step 0"\n')
    (workspace / "CLAUDE.md").write_text("# Rules\n\nOpen every reply with Step 0.\n")
    ws = datagen.find_workspace(workspace)
    datagen.add_knowledge(ws, [workspace / "CLAUDE.md"])
    prompts = [evaluation.EvalPrompt(prompt=f"What is the capital of {c}? One word.") for c, _ in CAPITALS]
    prompts += [evaluation.EvalPrompt(prompt=f"Write a Python function `{n}(a, b)` that returns {b}. Keep it short, "
                                             "one line, code only.") for n, b, _ in FUNCS]

    def tuned(call: Call) -> Reply:       # keeps the rule on coding prompts only
        user = next(m["content"] for m in call.messages if m["role"] == "user")
        return Reply(text=("Step 0: done. " if "function" in user else "Paris. ") + "ok")

    with hosted_server(tuned) as fake:
        model = router.ModelConfig(name="finetuned", provider="openai", model="tiny", api_base=fake.url + "/v1")
        report = evaluation.evaluate(ws, "r1", base=model, finetuned=model, prompts=prompts, base_with_prompt=False)
    evaluation.write_report(report, ws.state_dir / "runs" / "r1")
    result = runner.invoke(app, ["router", "learn", "--from-eval", "r1"])
    assert result.exit_code == 0, result.output
    assert "learned from 20 outcomes (10 where the local answer failed)" in result.output
    learned, default = _apgr(result.output)
    assert learned > default and learned > 0.6


@pytest.mark.parametrize("reply, task, good", [
    ("Paris", {"answer": "Paris"}, True),
    ("The capital is:\nparis.", {"answer": "Paris"}, True),
    ("Lyon", {"answer": "Paris"}, False),
    ("```python\ndef f(x):\n    return x + 1\n```", {"tests": "assert f(1) == 2"}, True),
    ("```python\ndef f(x):\n    return x\n```", {"tests": "assert f(1) == 2"}, False),
    ("def f(x) return", {"tests": "assert f(1) == 2"}, False),                   # does not parse
    ("```python\nwhile True:\n    pass\n```", {"tests": "pass"}, False),        # killed at the timeout
])
def test_grading(reply, task, good):
    assert learn.grade(learn.Task(prompt="p", **task), reply, timeout=2.0) is good


@pytest.mark.parametrize("line, reason", [
    ('{"prompt": "x"}', "give exactly one of 'answer', 'tests' or 'judge'"),
    ('{"prompt": "x", "answer": "1", "tests": "pass"}', "give exactly one of 'answer', 'tests' or 'judge'"),
    ('{"prompt": "x", "answer": "1", "judge": "is right"}', "give exactly one of 'answer', 'tests' or 'judge'"),
    ('{"prompt": "x", "judge": " "}', "judge criterion is empty"),
    ('{"prompt": "  ", "answer": "1"}', "prompt is empty"),
    ("not json", "tasks.jsonl:2"),
])
def test_bad_task_files_name_the_line(tmp_path, line, reason):
    path = tmp_path / "tasks.jsonl"
    path.write_text('{"prompt": "ok", "answer": "1"}\n' + line + "\n")
    with pytest.raises(ValueError, match=re.escape(reason)):
        learn.load_tasks(path)
