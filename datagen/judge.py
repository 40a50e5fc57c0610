"""`judge` rules: a model grades one reply against a rule's description, PASS or FAIL with a one-line reason.

datagen calls no model of its own choosing here: the caller hands in `complete(messages) -> text` — datagen's
litellm client when validating or generating, the router's providers when training's eval scores. Verdicts are
cached by a hash of everything the verdict depends on (judge, rule text, user turn, reply), in memory and, when
a path is given, in a JSONL file, so a rerun asks the model only about replies it has not seen.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from pathlib import Path

from datagen.errors import DatagenError

Complete = Callable[[list[dict]], str]

SYSTEM = """You grade one reply of a coding assistant against one rule of its project. Read the rule, the \
user's message and the reply. Answer with exactly one line: `PASS: <reason>` when the reply keeps the rule (or \
the rule does not concern this reply), `FAIL: <reason>` when it breaks it. The reason is one short sentence."""

VERDICT = re.compile(r"^\W*(PASS|FAIL)\b\W*(.*)$", re.I | re.M)


class JudgeError(DatagenError):
    """The judge model failed, or answered something other than PASS/FAIL."""


class Judge:
    def __init__(self, complete: Complete, name: str, cache_path: Path | None = None) -> None:
        self.complete = complete
        self.name = name
        self.cache_path = Path(cache_path) if cache_path else None
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[bool, str]] = _read_cache(self.cache_path)

    def grade(self, criterion: str, user: str, reply: str) -> tuple[bool, str]:
        """(passed, one-line reason). Raises JudgeError when the model cannot give a verdict."""
        key = hashlib.sha256(json.dumps([self.name, criterion, user, reply]).encode()).hexdigest()
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        prompt = f"Rule: {criterion}\n\nUser message:\n{user}\n\nAssistant reply:\n{reply or '(empty)'}"
        try:
            answer = self.complete([{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}])
        except JudgeError:
            raise
        except Exception as exc:  # the caller's client has its own exception types; its retries already ran
            raise JudgeError(f"the judge model {self.name} failed: {type(exc).__name__}: {exc}") from exc
        found = VERDICT.search(answer or "")
        if not found:
            raise JudgeError(f"the judge model {self.name} answered neither PASS nor FAIL: {(answer or '')[:120]!r}")
        verdict = (found.group(1).upper() == "PASS", found.group(2).strip().splitlines()[0][:200] if found.group(2)
                   else found.group(1).upper())
        with self._lock:
            self._cache[key] = verdict
            if self.cache_path:
                self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                with self.cache_path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"key": key, "passed": verdict[0], "reason": verdict[1]}) + "\n")
        return verdict


def _read_cache(path: Path | None) -> dict[str, tuple[bool, str]]:
    if not path or not path.is_file():
        return {}
    cache = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            cache[row["key"]] = (bool(row["passed"]), str(row["reason"]))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash: that verdict is simply asked again
    return cache


_LITELLM_JUDGES: dict[tuple[str, str | None], Judge] = {}


def litellm_judge(model: str, api_base: str | None = None) -> Judge:
    """datagen's own client (validation, headless generation); one per model so its cache lives with the process."""
    from datagen.llm import complete

    key = (model, api_base)
    if key not in _LITELLM_JUDGES:
        _LITELLM_JUDGES[key] = Judge(lambda messages: complete(model, messages, api_base=api_base, retries=3,
                                                               temperature=0.0), name=model)
    return _LITELLM_JUDGES[key]
