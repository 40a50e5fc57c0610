"""Cheap prompt features: length, code, turns, tools, requested reasoning (microseconds, no model)."""
from __future__ import annotations

import math
import re

import numpy as np

NAMES = ["log_chars", "log_lines", "code_lines", "fences", "log_turns", "log_tools", "reasoning", "questions"]

_CODE_LINE = re.compile(r"^\s*(def |class |import |from \S+ import|return\b|if .*:|for .*:|while |[{}();]\s*$|"
                        r"(const|let|var|fn|func|pub|public|private|#include|SELECT|package) |//|#!|@\w+)")
_REASONING = re.compile(r"\b(step by step|think (it )?through|reason(ing)? about|explain why|why does|prove|"
                        r"trade-?offs?|pros and cons|compare|evaluate|justify|in depth|deeply|root cause)\b", re.I)


def features(text: str, *, turns: int = 1, tools: int = 0) -> np.ndarray:
    lines = text.splitlines() or [""]
    code = sum(1 for line in lines if _CODE_LINE.search(line))
    return np.array([
        math.log1p(len(text)),
        math.log1p(len(lines)),
        code / len(lines),
        text.count("```") / 2,
        math.log1p(turns),
        math.log1p(tools),
        len(_REASONING.findall(text)),
        min(text.count("?"), 5),
    ], dtype=np.float32)
