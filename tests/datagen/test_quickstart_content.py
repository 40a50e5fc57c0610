"""The bundled example workspace works with the dataset commands: init from it, ingest its sources, import its
examples (every one valid and distinct) and its deliberately flawed file (every one rejected with reasons)."""
from __future__ import annotations

import json
import tomllib


import datagen
from tests.datagen.conftest import QUICKSTART


def test_bundled_examples_import_cleanly_and_flawed_ones_are_rejected(tmp_path, cli):
    root = tmp_path / "qs"
    assert cli("init", root, "--template", "quickstart").exit_code == 0
    added = cli("knowledge", "add", QUICKSTART / "sources", "-w", root)
    assert added.exit_code == 0 and " 0 chunks" not in added.stdout

    files = sorted((QUICKSTART / "examples").glob("*.jsonl"))
    result = cli("import", *files, "--approve", "--json", "-w", root)

    verdicts = [json.loads(line) for line in result.stdout.splitlines()]
    rejected = [v for v in verdicts if not v["accepted"]]
    assert result.exit_code == 0 and not rejected, json.dumps(rejected, indent=1)[:4000]
    ws = datagen.find_workspace(root)
    assert {c.name for c in ws.config.categories} >= {f.stem for f in files}

    flawed = QUICKSTART / "flawed.jsonl"
    bad = cli("import", flawed, "--json", "-w", root)
    assert bad.exit_code == 1
    for verdict in map(json.loads, bad.stdout.splitlines()):
        assert not verdict["accepted"] and verdict["reasons"], verdict


NEUTRAL_REPLY = "Step 0 — Identity Audit: held-out prompt (TODO(human) marks nothing here; I ran the tests)."


def test_held_out_prompts_are_not_near_duplicates_of_the_training_examples(tmp_path, monkeypatch):
    """The project's own dedup (exact, MinHash, MiniLM on the user turn) finds no eval prompt in the training set,
    even at a semantic threshold of 0.8, stricter than the default 0.9 (which lets most paraphrases through)."""
    root = tmp_path / "qs"
    datagen.init_workspace(root, template=QUICKSTART, force=True)
    ws = datagen.find_workspace(root)
    for path in sorted((QUICKSTART / "examples").glob("*.jsonl")):
        assert all(v.accepted for v in datagen.import_file(ws, path, status="approved"))
    monkeypatch.setenv("ENGRAIN_SEMANTIC_THRESHOLD", "0.8")
    ws = datagen.find_workspace(root)
    assert ws.config.semantic_threshold == 0.8
    prompts = [json.loads(line) for line in (QUICKSTART / "eval_prompts.jsonl").read_text().splitlines()]
    held_out = tmp_path / "held_out.jsonl"
    held_out.write_text("".join(json.dumps({
        "messages": [{"role": "user", "content": p["prompt"]}, {"role": "assistant", "content": NEUTRAL_REPLY}],
        "category": p["category"]}) + "\n" for p in prompts))
    verdicts = list(datagen.import_file(ws, held_out))
    assert len(verdicts) == len(prompts)
    copies = [(prompts[v.index]["prompt"], v.reasons) for v in verdicts if not v.accepted]
    assert not copies, copies


def test_every_bundled_rule_has_twenty_held_out_prompts_that_can_break_it():
    """Rules gated on the prompt (learning mode; tests-before-done on requests to fix or finish something) apply to
    >= 20 prompts, there are >= 20 requests to finish or fix something, and each "never" rule gets prompts that tempt
    it."""
    raw = tomllib.loads((QUICKSTART / "engrain.toml").read_text())
    ws_rules = {r["name"]: datagen.Rule.model_validate(r) for r in raw["rules"]}
    assert len(ws_rules) >= 5
    prompts = [json.loads(line)["prompt"] for line in (QUICKSTART / "eval_prompts.jsonl").read_text().splitlines()]
    for rule in ws_rules.values():
        if rule.when_reply:
            continue
        applicable = sum(datagen.check_rules([rule], [{"role": "user", "content": p},
                                                      {"role": "assistant", "content": "ok"}], "tool-use")[0].applicable
                         for p in prompts)
        assert applicable >= 20, (rule.name, applicable)
    lowered = [p.lower() for p in prompts]
    finish = [p for p in lowered if any(w in p for w in ("fix", "done", "finish", "complete"))]
    hooks = [p for p in lowered if any(w in p for w in ("hook", "force", "overwrite", "push"))]
    one_file = [p for p in lowered if any(w in p for w in ("one file", "single", "one big", "one module", "lines"))]
    assert len(finish) >= 20 and len(hooks) >= 10 and len(one_file) >= 5, (len(finish), len(hooks), len(one_file))


S0 = "Step 0 — Identity Audit: I'm the agent in parcelhub. "
TESTS_BEFORE_DONE = [   # (request, reply, applies, passes): the request decides, the reply must show a test run
    ("Fix the flaky ETA test and tell me when it's done.", S0 + "Done, it's fixed.", True, False),
    ("Fix the flaky ETA test and tell me when it's done.", S0 + "Fixed. I ran `pytest tests/eta -q`: 12 passed.",
     True, True),
    ("Implement the pickup export.", S0 + "I'll write it and run the tests before calling it done.", True, True),
    ("Is the webhook bug fixed? Yes or no.", S0 + "Yes.", True, False),
    ("Patch the GLS poller so an empty body is skipped.", S0 + "Here is the patch; it should work now.", True, False),
    ("Learning mode: fix the ETA test, but I'll write the change.", S0 + "TODO(human): your change here.", False, True),
    ("Where is the DHL parser?", S0 + "In carriers/dhl.py; done.", False, True),
]


def test_tests_before_done_applies_to_requests_to_fix_or_finish_and_needs_a_test_run():
    raw = tomllib.loads((QUICKSTART / "engrain.toml").read_text())
    rule = datagen.Rule.model_validate(next(r for r in raw["rules"] if r["name"] == "tests-before-done"))
    got = []
    for prompt, reply, _, _ in TESTS_BEFORE_DONE:
        result = datagen.check_rules([rule], [{"role": "user", "content": prompt},
                                              {"role": "assistant", "content": reply}], "tool-use")[0]
        got.append((prompt, reply, result.applicable, result.passed))
    assert got == TESTS_BEFORE_DONE
