"""Routing learned from outcomes: label prompts by what the user's local model actually did, then fit and
calibrate a head (embedding head + per-topic priors) and measure it against the head it replaces.

Outcomes arrive as plain `Labelled` records (the CLI reads eval runs and the feedback table and hands them
over): `weak` is 1.0 when the local answer was good, `strong` is taken as 1.0 (the strong model is the
fallback that is assumed to cope). Task files are graded here: the local model answers through the
router's providers, and each answer is checked against a reference answer, unit tests run in a subprocess, or
a criterion a judge model grades (the caller hands in the judge: the router knows nothing of rules).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from pydantic import BaseModel, ValidationError, model_validator

from router import evaluate, recipe
from router.config import ModelConfig
from router.decisions import Outcome
from router.errors import InputError
from router.evaluate import Labelled
from router.head import Head, fit_priors
from router.providers import chat
from router.scoring import head_rows, head_scores

MIN_PROMPTS = 10            # fewer outcomes than this refit nothing: only the per-topic priors move
JudgeFn = Callable[[str, str, str], bool]   # (criterion, prompt, reply) -> the reply meets the criterion


class Task(BaseModel):
    """One line of a task file: a prompt and how to grade the local model's answer to it."""

    prompt: str
    answer: str | None = None        # expected answer: the reply's last line (or the whole reply) must equal it
    tests: str | None = None         # Python tests run after the reply's code; exit status 0 = good
    judge: str | None = None         # a criterion the judge model grades the reply against (PASS = good)
    category: str | None = None

    @model_validator(mode="after")
    def _gradable(self) -> "Task":
        if not self.prompt.strip():
            raise ValueError("prompt is empty")
        if sum(v is not None for v in (self.answer, self.tests, self.judge)) != 1:
            raise ValueError("give exactly one of 'answer', 'tests' or 'judge'")
        if self.judge is not None and not self.judge.strip():
            raise ValueError("judge criterion is empty")
        return self


def load_tasks(path: Path) -> list[Task]:
    tasks = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            tasks.append(Task.model_validate(json.loads(line)))
        except (ValueError, ValidationError) as exc:
            reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            raise InputError(f"{path}:{lineno}: {reason}") from None
    if not tasks:
        raise InputError(f"{path}: no tasks")
    return tasks


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().strip(".").lower())


def grade_answer(reply: str, answer: str) -> bool:
    """Exact answer: the whole reply, or its last non-empty line, equals the reference (case, spaces, a final
    full stop ignored)."""
    lines = [line for line in reply.strip().splitlines() if line.strip()]
    return _norm(reply) == _norm(answer) or bool(lines) and _norm(lines[-1]) == _norm(answer)


_FENCE = re.compile(r"```[\w+-]*\n(.*?)```", re.S)


def grade_tests(reply: str, tests: str, timeout: float = 10.0) -> bool:
    """The reply's code (its first fenced block, else the whole reply) followed by the tests, in a fresh Python
    process with a timeout; passes when it exits 0."""
    match = _FENCE.search(reply)
    code = (match.group(1) if match else reply) + "\n\n" + tests + "\n"
    with tempfile.TemporaryDirectory(prefix="engrain-grade-") as tmp:
        script = Path(tmp) / "check.py"
        script.write_text(code, encoding="utf-8")
        try:
            done = subprocess.run([sys.executable, "-I", str(script)], cwd=tmp, capture_output=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False
    return done.returncode == 0


def grade(task: Task, reply: str, timeout: float = 10.0, judge: JudgeFn | None = None) -> bool:
    if task.judge is not None:
        if judge is None:
            raise InputError("a task is graded by a judge and no judge model is set (--judge)")
        return judge(task.judge, task.prompt, reply)
    return grade_answer(reply, task.answer) if task.answer is not None else grade_tests(reply, task.tests, timeout)


def label_tasks(tasks: Sequence[Task], model: ModelConfig, *, max_tokens: int = 512, timeout: float = 10.0,
                judge: JudgeFn | None = None, on_task: Callable[[int, bool], None] | None = None) -> list[Labelled]:
    """Run the local model on each task (greedy) and grade it: good -> weak 1.0, bad -> weak 0.0."""
    if judge is None and any(t.judge is not None for t in tasks):   # fail before any model call, not midway
        raise InputError("the task file has judge-graded tasks and no judge model is set (--judge)")
    out = []
    for i, task in enumerate(tasks):
        reply = chat(model, [{"role": "user", "content": task.prompt}], max_tokens=max_tokens, temperature=0.0).text
        good = grade(task, reply, timeout, judge)
        out.append(Labelled(task.prompt, float(good), 1.0, task.category or ""))
        if on_task:
            on_task(i, good)
    return out


def from_feedback(outcomes: Sequence[Outcome], weak_tier: str) -> tuple[list[Labelled], list[tuple[float, str, int]]]:
    """Judged local answers as labels: with the prompt logged, a full record; without it, (score, topic, label)
    for the priors alone. Hosted answers say nothing about what the local model can do and are skipped."""
    records, anonymous = [], []
    for o in outcomes:
        if o.tier != weak_tier:
            continue
        if o.prompt is not None:
            records.append(Labelled(o.prompt, float(o.verdict == "good"), 1.0, o.topic or ""))
        elif o.score is not None:
            anonymous.append((o.score, o.topic or "other", int(o.verdict == "bad")))
    return records, anonymous


@dataclass
class LearnReport:
    n: int
    local_failed: int
    refit: bool                      # the embedding head was refitted (else: the base head + priors)
    cv_apgr_learned: float | None    # cross-validated on these prompts
    apgr_base: float | None          # the head it replaces, on the same prompts
    priors: dict[str, float]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _calibrated(head: Head, scores: np.ndarray, share_strong: float) -> Head:
    # send as large a share to the strong tier as the local model failed on
    head.threshold = evaluate.threshold_for(scores, min(1.0, max(0.0, share_strong)))
    return head


def learn(records: Sequence[Labelled], base: Head, *, anonymous: Sequence[tuple[float, str, int]] = (),
          source: str = "") -> tuple[Head, LearnReport]:
    """A head for these outcomes, and how it compares with `base` on them (cross-validated)."""
    records = list(records)
    y = np.array([r.needs_strong for r in records], float)
    texts = [r.prompt for r in records]
    refit = bool(len(records) >= MIN_PROMPTS and 0 < y.sum() < len(y))
    cv = base_apgr = None
    if refit:
        cv = evaluate.evaluate(recipe.cross_validated_scores(records, feature_names=base.features,
                                                             embedding=base.embedding_model), records).apgr
        base_apgr = evaluate.evaluate(head_scores(base, texts), records).apgr
        head = recipe.train(records, feature_names=base.features, embedding=base.embedding_model,
                            trained_on=source)
    else:
        head = base.model_copy(deep=True)
        head.trained_on = f"{base.trained_on}; priors from {source}"
    logits = list(head.logits(head_rows(head, texts))) if texts else []
    topics = recipe.topics(texts)
    for score, topic, label in anonymous:
        logits.append(float(_logit(np.array([score]))[0]))
        topics.append(topic)
    labels = np.concatenate([y, [a[2] for a in anonymous]])
    if len(labels):
        head.priors = fit_priors(np.array(logits), labels, topics)
        scores = 1 / (1 + np.exp(-(np.array(logits) + [head.priors.get(t, 0.0) for t in topics])))
        head = _calibrated(head, scores, float(labels.mean()))
    report = LearnReport(n=len(labels), local_failed=int(labels.sum()), refit=refit, cv_apgr_learned=cv,
                         apgr_base=base_apgr, priors=head.priors)
    return head, report
