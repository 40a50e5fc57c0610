"""Rule semantics as the contract states them: per reply; starts_with on the reply's first assistant message; the
other kinds on all its assistant text; when_* gates make a rule not applicable rather than failing."""
from __future__ import annotations

import datagen
from datagen import Rule

STEP0 = Rule(name="step0", kind="starts_with", pattern="Step 0 — Identity Audit")
TESTS = Rule(name="tests", kind="regex_must", pattern=r"(?i)ran the tests", when_reply=r"(?i)\bdone\b")
TODO = Rule(name="todo", kind="regex_must", pattern=r"TODO\(human\)", when_user="(?i)learning mode",
            categories=["collaboration"])
NO_FORCE = Rule(name="no-force", kind="not_name", terms=["--no-verify", "push --force"])
SHORT = Rule(name="short-code", kind="max_code_lines", value=3)


def _conversation(*turns):
    return [{"role": role, "content": content} for role, content in turns]


def _results(rules, messages, category="collaboration"):
    return {r.name: (r.applicable, r.passed) for r in datagen.check_rules(rules, messages, category)}


def test_starts_with_checks_the_first_assistant_message_of_every_reply():
    messages = _conversation(("user", "a"), ("assistant", "Step 0 — Identity Audit: ok"), ("assistant", "more"),
                             ("user", "b"), ("assistant", "Sure, here it is."))
    [result] = datagen.check_rules([STEP0], messages, "tool-use")
    assert not result.passed and result.applicable
    assert result.detail.startswith("reply 2: does not start with")
    empty = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "",
             "tool_calls": [{"id": "c", "type": "function", "function": {"name": "Grep", "arguments": "{}"}}]}]
    assert _results([STEP0], empty) == {"step0": (True, False)}


def test_when_gates_make_rules_not_applicable():
    not_done = _conversation(("user", "status?"), ("assistant", "Still working on it."))
    done_without_tests = _conversation(("user", "status?"), ("assistant", "All done."))
    done_with_tests = _conversation(("user", "status?"), ("assistant", "Done: I ran the tests, 40 passed."))
    assert _results([TESTS], not_done) == {"tests": (False, True)}
    assert _results([TESTS], done_without_tests) == {"tests": (True, False)}
    assert _results([TESTS], done_with_tests) == {"tests": (True, True)}

    learning = _conversation(("user", "Learning mode: add the retry."), ("assistant", "Wrote the loop."))
    assert _results([TODO], learning) == {"todo": (True, False)}
    assert _results([TODO], learning, "tool-use") == {"todo": (False, True)}


def test_not_name_and_code_length_check_all_assistant_text_of_the_reply():
    messages = _conversation(("user", "push it"), ("assistant", "Pushing."), ("tool", "ok"),
                             ("assistant", "I used git PUSH --FORCE.\n```python\na\nb\nc\nd\n```"))
    results = datagen.check_rules([NO_FORCE, SHORT], messages, "tool-use")
    assert [(r.passed, r.detail) for r in results] == [
        (False, "names 'push --force'"), (False, "a code block has 4 lines, more than 3")]


def test_a_user_naming_a_term_does_not_break_the_reply():
    messages = _conversation(("user", "Can I use --no-verify?"), ("assistant", "No: the hooks must run."))
    assert _results([NO_FORCE], messages) == {"no-force": (True, True)}
