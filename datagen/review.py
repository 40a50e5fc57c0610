"""Review: human decisions (which set an example's status) and a model judge's suggestions, both as events."""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from datagen import store
from datagen.errors import DatagenError
from datagen.llm import complete
from datagen.schema import ReviewEvent

JUDGE_PROMPT = """You review training examples for a coding assistant's fine-tuning dataset.
Judge the example against its category's description, guidance and rules. Approve only examples a careful
human reviewer would keep: correct, realistic, following every rule, and teaching the category's behaviour.
Answer with one JSON object and nothing else:
{"verdict": "approve" or "reject", "score": a number from 0 to 1, "notes": "one or two sentences why"}"""


class JudgeAnswer(BaseModel):
    verdict: Literal["approve", "reject"]
    score: float = Field(ge=0, le=1)
    notes: str = ""


def review_example(ws, example_id: str, verdict: Literal["approve", "reject"], *, notes: str = "",
                   reviewer: str = "human", score: float | None = None) -> ReviewEvent:
    if verdict not in ("approve", "reject"):
        raise DatagenError(f"verdict must be 'approve' or 'reject', not {verdict!r}")
    conn = store.connect(ws.database)
    with store.transaction(conn):
        store.get(conn, example_id)  # raises ExampleNotFound with a hint
        return store.add_review(conn, example_id, kind="decision", verdict=verdict, reviewer=reviewer, notes=notes,
                                score=score)


def judge_pending(ws, model: str, *, limit: int = 20, api_base: str | None = None,
                  on_event: Callable[[ReviewEvent], None] | None = None) -> list[ReviewEvent]:
    """Ask `model` (a litellm PROVIDER/MODEL) about pending examples; its verdicts become suggestions."""
    conn = store.connect(ws.database)
    events = []
    for stored in store.page(conn, category=None, status="pending", offset=0, limit=limit).items:
        example = stored.example
        category = ws.config.category(example.category)
        rules = [r for r in ws.config.rules if "*" in r.categories or example.category in r.categories]
        prompt = json.dumps({
            "category": example.category,
            "description": category.description if category else "",
            "guidance": category.guidance if category else "",
            "rules": [{"name": r.name, "description": r.description} for r in rules],
            "example": example.wire(),
        }, ensure_ascii=False, indent=1)
        text = complete(model, [{"role": "system", "content": JUDGE_PROMPT}, {"role": "user", "content": prompt}],
                        api_base=api_base, temperature=0)
        answer = parse_judge_answer(text)
        if answer is None:
            continue  # an unreadable answer is no suggestion; the example stays pending for a human
        with store.transaction(conn):
            event = store.add_review(conn, stored.id, kind="suggestion", verdict=answer.verdict,
                                     reviewer=f"judge:{model}", notes=answer.notes, score=answer.score)
        events.append(event)
        if on_event:
            on_event(event)
    return events


def parse_judge_answer(text: str) -> JudgeAnswer | None:
    match = re.search(r"\{.*\}", text, re.S)
    if not match:
        return None
    try:
        return JudgeAnswer.model_validate(json.loads(match.group(0)))
    except (json.JSONDecodeError, ValidationError):
        return None
