"""Cheap prompt features (microseconds, no model): length, digits, topic, code, turns, tools, asked-for reasoning.

Topic (math, code, extraction, reasoning) and the share of digits carry most of what a cheap router can see
about whether a small model will cope; length matters for word problems. A head names the features it was
fitted on, so adding one here never changes what an existing head reads. `topic()` also names the category
a head's per-category prior applies to.
"""
from __future__ import annotations

import math
import re
from typing import Callable

import numpy as np

_CODE_LINE = re.compile(r"^\s*(def |class |import |from \S+ import|return\b|if .*:|for .*:|while |[{}();]\s*$|"
                        r"(const|let|var|fn|func|pub|public|private|#include|SELECT|package) |//|#!|@\w+)")
_REASONING = re.compile(r"\b(step by step|think (it )?through|reason(ing)? about|explain why|why does|prove|"
                        r"trade-?offs?|pros and cons|compare|evaluate|justify|in depth|deeply|root cause)\b", re.I)
_MATH = re.compile(r"(\b(solve|equation|integral|derivative|probability|calculate|compute|how many|how much|sum of|"
                   r"percent(age)?|ratio|average|factor|prime|polynomial|matrix|theorem|geometry|triangle|"
                   r"circle|angle|area|volume|speed|interest rate|remainder|modulo)\b|\d\s*[-+*/^=<>]\s*\d|"
                   r"[=∫√π∑≤≥]|\\frac|\$\d)", re.I)
_CODE = re.compile(r"(```|\b(python|javascript|typescript|java|rust|golang|c\+\+|sql|bash|html|css|regex|function|"
                   r"class|method|variable|compile|exception|stack trace|api|json|script|code|bug|debug|"
                   r"implement|refactor|unit test|git)\b|\w+\(\)|[{};]\s*$)", re.I | re.M)
_EXTRACTION = re.compile(r"\b(extract|summari[sz]e|summary|list (all|the)|from the (following|text|passage|above)|"
                         r"identify|classify|categori[sz]e|translate|rewrite|paraphrase|table|bullet|format)\b", re.I)
_LOGIC = re.compile(r"\b(step by step|think|reason|logic(al)?|puzzle|riddle|prove|why|explain|infer|deduce|"
                    r"assum(e|ption)|if\b.{0,80}\bthen|therefore|imply|implies|argument|paradox)\b", re.I)
# a multiple-choice scaffold (MMLU's shape): lettered choice lines, then a closing "Answer:"
_CHOICE = re.compile(r"^[ \t]*[A-D]\.[ \t].*(?:\n|$)", re.M)
_ANSWER = "Answer:"
TOPICS = ("math", "code", "extraction", "reasoning")
# pattern features read the head of long prompts only: a 50 KB agent request must not cost milliseconds
_SCAN = 4000


def _share(pattern: re.Pattern, text: str) -> float:
    """Hits per 100 words, capped: a topic's density, not a count that grows with length."""
    text = text[:_SCAN]
    words = max(1, len(text.split()))
    return min(5.0, 100.0 * len(pattern.findall(text)) / words)


def _code_lines(text: str) -> float:
    lines = text[:_SCAN].splitlines() or [""]
    return sum(1 for line in lines if _CODE_LINE.search(line)) / len(lines)


_FEATURES: dict[str, Callable[[str, int, int], float]] = {
    "log_chars": lambda t, turns, tools: math.log1p(len(t)),
    "log_lines": lambda t, turns, tools: math.log1p(len(t.splitlines() or [""])),
    "log_words": lambda t, turns, tools: math.log1p(len(t.split())),
    "digit_share": lambda t, turns, tools: sum(c.isdigit() for c in t) / max(1, len(t)),
    "code_lines": lambda t, turns, tools: _code_lines(t),
    "fences": lambda t, turns, tools: t.count("```") / 2,
    "log_turns": lambda t, turns, tools: math.log1p(turns),
    "log_tools": lambda t, turns, tools: math.log1p(tools),
    "reasoning": lambda t, turns, tools: len(_REASONING.findall(t[:_SCAN])),
    "questions": lambda t, turns, tools: min(t.count("?"), 5),
    "topic_math": lambda t, turns, tools: _share(_MATH, t),
    "topic_code": lambda t, turns, tools: _share(_CODE, t),
    "topic_extraction": lambda t, turns, tools: _share(_EXTRACTION, t),
    "topic_reasoning": lambda t, turns, tools: _share(_LOGIC, t),
}
NAMES = list(_FEATURES)


def question(text: str) -> str:
    """The question without a multiple-choice scaffold (choice lines `A. ...` to `D. ...` and the closing
    `Answer:`); any other text unchanged. Heads are fitted on MMLU, whose every prompt carries the scaffold and
    no chat prompt does: reading it, a head learns the format (four answer lines add length) instead of what
    makes a question hard. Only a text that ends with `Answer:` is touched, so the check costs one suffix test."""
    end = text.rstrip()
    if not end.endswith(_ANSWER):
        return text
    return _CHOICE.sub("", end[:-len(_ANSWER)]).strip()


def features(text: str, names: list[str] | None = None, *, turns: int = 1, tools: int = 0) -> np.ndarray:
    """The named features of one prompt (all of NAMES when `names` is None)."""
    try:
        return np.array([_FEATURES[n](text, turns, tools) for n in (names or NAMES)], dtype=np.float32)
    except KeyError as exc:
        raise ValueError(f"unknown feature {exc.args[0]!r}; known: {NAMES}") from None


def topic(text: str) -> str:
    """The prompt's dominant topic (`other` when none shows): the category a head's prior is kept for."""
    shares = {name: _share(p, text) for name, p in zip(TOPICS, (_MATH, _CODE, _EXTRACTION, _LOGIC))}
    best = max(shares, key=shares.get)
    return best if shares[best] > 0 else "other"
