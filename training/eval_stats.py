"""What an eval's pass counts can and cannot show: Wilson intervals, which rules the base model already keeps,
and which rules moved into the weights.

A rule is *substantive* when the base model without the prompt breaks it on at least 10% of the prompts it
applied to; the rest are "held without training" (nothing for the fine-tune to teach, so they stay out of the
headline). A substantive rule *transferred* when the fine-tuned model without the prompt keeps it on at least
90% of its prompts and the base model with the prompt does not lie above the fine-tune's 95% interval.
"""
from __future__ import annotations

import math

from pydantic import BaseModel

Z95 = 1.959964
SUBSTANTIVE_FAILURE_RATE = 0.10
TRANSFER_RATE = 0.90
BASE_WITH, BASE_WITHOUT, TUNED = "base_with_prompt", "base_without_prompt", "finetuned_without_prompt"


class RuleStat(BaseModel):
    applicable: int
    passed: int
    rate: float | None = None         # None when the rule applied to no prompt in this arm
    low: float | None = None          # Wilson 95% interval
    high: float | None = None


class RuleVerdict(BaseModel):
    rule: str
    kind: str
    description: str = ""
    arms: dict[str, RuleStat]
    substantive: bool
    transferred: bool | None          # None unless substantive
    status: str                       # transferred | not transferred | held without training | applied to no prompt
    note: str = ""


def wilson(passed: int, n: int) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = passed / n
    centre = (p + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) / (1 + Z95 ** 2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rule_stat(outcomes: list[bool]) -> RuleStat:
    n, k = len(outcomes), sum(outcomes)
    if not n:
        return RuleStat(applicable=0, passed=0)
    low, high = wilson(k, n)
    return RuleStat(applicable=n, passed=k, rate=round(k / n, 4), low=round(low, 4), high=round(high, 4))


def verdict(rule: str, kind: str, description: str, arms: dict[str, RuleStat]) -> RuleVerdict:
    base, tuned, reference = arms.get(BASE_WITHOUT), arms.get(TUNED), arms.get(BASE_WITH)
    common = {"rule": rule, "kind": kind, "description": description, "arms": arms}
    if not any(stat.applicable for stat in arms.values()):
        return RuleVerdict(**common, substantive=False, transferred=None, status="applied to no prompt",
                           note="no prompt in this file triggers it: add prompts it applies to")
    if base is None or not base.applicable:
        return RuleVerdict(**common, substantive=False, transferred=None, status="held without training",
                           note="never applied to the base model without the prompt, so nothing to compare")
    if 1 - base.rate < SUBSTANTIVE_FAILURE_RATE:
        return RuleVerdict(**common, substantive=False, transferred=None, status="held without training",
                           note=f"the base model without the prompt already keeps it ({base.rate:.0%})")
    if tuned is None or not tuned.applicable:
        return RuleVerdict(**common, substantive=True, transferred=False, status="not transferred",
                           note="never applied to the fine-tuned model's replies, so it is not shown to hold")
    problems = []
    if tuned.rate < TRANSFER_RATE:
        problems.append(f"fine-tuned {tuned.rate:.0%} < {TRANSFER_RATE:.0%}")
    if reference is not None and reference.applicable and reference.rate > tuned.high:
        problems.append(f"base with prompt {reference.rate:.0%} above the fine-tune's interval "
                        f"(≤ {tuned.high:.0%})")
    return RuleVerdict(**common, substantive=True, transferred=not problems,
                       status="not transferred" if problems else "transferred", note="; ".join(problems))


def macro(verdicts: list[RuleVerdict], arm: str) -> float | None:
    """Mean of the arm's per-rule rates over substantive rules (each rule weighs the same)."""
    rates = [v.arms[arm].rate for v in verdicts
             if v.substantive and arm in v.arms and v.arms[arm].rate is not None]
    return round(sum(rates) / len(rates), 4) if rates else None
