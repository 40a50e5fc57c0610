"""Behaviour A/B eval: does the fine-tuned model, *without* the system prompt, follow the workspace's rules as
often as the base model does *with* it — and how many prompt tokens does that save?

Three arms replay the same held-out prompts greedily (temperature 0, fixed seed, so a rerun gives the same
numbers): the base model with the full system prompt built from the workspace's knowledge, the base model
without it, and the fine-tuned model without it. Models are called through the router's providers, so the
same code evaluates an embedded GGUF, an Ollama model or a hosted one.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, Field

import datagen
import router
from training import eval_report
from training.eval_stats import RuleVerdict, macro, rule_stat, verdict

ARMS = ("base_with_prompt", "base_without_prompt", "finetuned_without_prompt")
TUNED = ARMS[2]


class EvalPrompt(BaseModel):
    prompt: str
    category: str | None = None
    tools: list[dict[str, Any]] | None = None
    # Whether the reference answer called a tool; tool-call validity counts only prompts where one was expected
    # (None: unknown, so only an answer that does call is judged).
    expects_tool_call: bool | None = None


class Answer(BaseModel):
    arm: str
    prompt_index: int
    text: str
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    prompt_tokens: int
    rules: dict[str, bool]            # rule -> passed, applicable rules only
    tool_calls_valid: bool | None     # None unless the prompt declared tools


class ArmSummary(BaseModel):
    arm: str
    model: str
    with_system_prompt: bool
    adherence: float                  # passed / applicable over every (prompt, rule)
    per_rule: dict[str, float]
    prompts_fully_adherent: float     # share of prompts with every applicable rule passed
    tool_call_validity: float | None
    prompt_tokens_mean: float


class EvalReport(BaseModel):
    run_id: str
    seed: int
    max_tokens: int
    prompts: list[EvalPrompt]
    system_prompt_tokens: int
    arms: list[ArmSummary]
    answers: list[Answer]
    prompt_tokens_saved_pct: float    # finetuned-without vs base-with, in [0, 1]
    rules: list[RuleVerdict] = Field(default_factory=list)   # every workspace rule, in engrain.toml order
    behaviours_transferred: int = 0
    macro_adherence: dict[str, float | None] = Field(default_factory=dict)   # arm -> mean over substantive rules

    def arm(self, name: str) -> ArmSummary | None:
        return next((a for a in self.arms if a.arm == name), None)

    def headline(self) -> dict[str, Any]:
        def value(name: str) -> float | None:
            summary = self.arm(name)
            return summary.adherence if summary else None

        def named(status: str) -> list[str]:
            return [v.rule for v in self.rules if v.status == status]

        applicable = [v.arms[TUNED].applicable for v in self.rules if v.substantive and TUNED in v.arms]
        return {"adherence_base_with_prompt": value("base_with_prompt"),
                "adherence_base_without_prompt": value("base_without_prompt"),
                "adherence_finetuned_without_prompt": value("finetuned_without_prompt"),
                "prompt_tokens_saved_pct": self.prompt_tokens_saved_pct,
                "behaviours_transferred": self.behaviours_transferred,
                "substantive_rules": sum(v.substantive for v in self.rules),
                "rules_transferred": named("transferred"), "rules_not_transferred": named("not transferred"),
                "rules_held_without_training": named("held without training"),
                "rules_applied_to_no_prompt": named("applied to no prompt"),
                **{f"macro_adherence_{arm}": rate for arm, rate in self.macro_adherence.items()},
                "min_applicable_prompts_finetuned": min(applicable) if applicable else 0}


def load_prompts(path: Path) -> list[EvalPrompt]:
    """Any prompt file: JSONL (or a JSON array) of {"prompt", "category"?, "tools"?}, of example records (chat
    `messages`, ShareGPT `conversations` or Alpaca `instruction`: the first user turn is the prompt), or plain
    text with one prompt per line. A prompt without a category is scored by the rules that apply to every one."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise datagen.DatagenError(f"cannot read prompts from {path}: {exc}") from None
    records = _records(path, text)
    prompts = []
    for number, record in records:
        record = _as_prompt(record)
        if not isinstance(record.get("prompt"), str) or not record["prompt"].strip():
            raise datagen.DatagenError(f"{path}:{number}: needs a non-empty \"prompt\" string (or a user turn)")
        try:
            prompts.append(EvalPrompt.model_validate(record))
        except ValueError as exc:
            raise datagen.DatagenError(f"{path}:{number}: {str(exc).splitlines()[-1].strip()}") from None
    if not prompts:
        raise datagen.DatagenError(f"{path} holds no prompts")
    return prompts


def _records(path: Path, text: str) -> list[tuple[int, Any]]:
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            return list(enumerate(json.loads(text), 1))
        except json.JSONDecodeError as exc:
            raise datagen.DatagenError(f"{path}: not a JSON array ({exc.msg} at line {exc.lineno})") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not stripped.startswith("{"):
        return [(n, {"prompt": line.strip()}) for n, line in lines]
    records = []
    for number, line in lines:
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise datagen.DatagenError(f"{path}:{number}: not JSON ({exc.msg})") from None
    return records


def _as_prompt(record: Any) -> dict[str, Any]:
    if isinstance(record, str):
        return {"prompt": record}
    if not isinstance(record, dict) or "prompt" in record:
        return record if isinstance(record, dict) else {}
    turns = record.get("messages") or record.get("conversations") or []
    user = next((t.get("content", t.get("value")) for t in turns if isinstance(t, dict)
                 and t.get("role", t.get("from")) in ("user", "human")), None)
    if user is None and isinstance(record.get("instruction"), str):
        user = "\n\n".join(part for part in (record["instruction"], record.get("input") or "") if part)
    # The reference answer's first reply says whether a call was expected (chat records only).
    reply = next((t for t in record.get("messages") or []
                  if isinstance(t, dict) and t.get("role") == "assistant"), None)
    expects = bool(reply.get("tool_calls")) if reply is not None and record.get("tools") else None
    return {"prompt": user, "category": record.get("category"), "tools": record.get("tools"),
            "expects_tool_call": expects}


def system_prompt(ws: datagen.Workspace) -> str:
    """The context the fine-tune replaces: every knowledge source, reassembled in file order."""
    chunks = sorted(datagen.list_knowledge(ws), key=lambda c: (c.source, c.line_start))
    if not chunks:
        raise datagen.DatagenError("the workspace has no knowledge to build a system prompt from; "
                                   "run `engrain knowledge add CLAUDE.md rules/ ...` first")
    return "\n\n".join(chunk.text.strip() for chunk in chunks)


def evaluate(ws: datagen.Workspace, run_id: str, *, base: router.ModelConfig, finetuned: router.ModelConfig,
             prompts: list[EvalPrompt], seed: int = 0, max_tokens: int = 200, base_with_prompt: bool = True,
             judge: datagen.Judge | None = None, on_answer: Callable[[Answer], None] | None = None) -> EvalReport:
    """`judge` grades the workspace's `judge` rules (see training.judging.router_judge)."""
    rules = datagen.load_rules(ws)
    system = system_prompt(ws)
    arms = [("base_without_prompt", base, False), ("finetuned_without_prompt", finetuned, False)]
    if base_with_prompt:
        arms.insert(0, ("base_with_prompt", base, True))
    answers: list[Answer] = []
    for arm, model, with_system in arms:
        for index, item in enumerate(prompts):
            messages = ([{"role": "system", "content": system}] if with_system else [])
            messages.append({"role": "user", "content": item.prompt})
            result = router.chat(model, messages, max_tokens=max_tokens, temperature=0.0, seed=seed,
                                 tools=item.tools)
            answer = _score(ws, rules, arm, index, item, result, judge)
            answers.append(answer)
            if on_answer:
                on_answer(answer)
    summaries = [_summarise(arm, model, with_system, [a for a in answers if a.arm == arm])
                 for arm, model, with_system in arms]
    by_arm = {s.arm: s for s in summaries}
    reference = by_arm.get("base_with_prompt")
    tuned = by_arm["finetuned_without_prompt"]
    saved = 0.0
    if reference and reference.prompt_tokens_mean:
        saved = max(0.0, 1.0 - tuned.prompt_tokens_mean / reference.prompt_tokens_mean)
    system_tokens = int(reference.prompt_tokens_mean - by_arm["base_without_prompt"].prompt_tokens_mean) \
        if reference else 0
    verdicts = _verdicts(rules, [arm for arm, _, _ in arms], answers)
    return EvalReport(run_id=run_id, seed=seed, max_tokens=max_tokens, prompts=prompts,
                      system_prompt_tokens=system_tokens, arms=summaries, answers=answers,
                      prompt_tokens_saved_pct=round(saved, 4), rules=verdicts,
                      behaviours_transferred=sum(bool(v.transferred) for v in verdicts),
                      macro_adherence={arm: macro(verdicts, arm) for arm, _, _ in arms})


def _verdicts(rules: list, arms: list[str], answers: list[Answer]) -> list[RuleVerdict]:
    out = []
    for rule in rules:
        stats = {arm: rule_stat([a.rules[rule.name] for a in answers if a.arm == arm and rule.name in a.rules])
                 for arm in arms}
        out.append(verdict(rule.name, rule.kind, rule.description, stats))
    return out


def _score(ws: datagen.Workspace, rules: list, arm: str, index: int, item: EvalPrompt,
           result: router.ChatResult, judge: datagen.Judge | None = None) -> Answer:
    calls = [{"id": f"call_{n}", "type": "function",
              "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
             for n, c in enumerate(result.tool_calls)]
    assistant: dict[str, Any] = {"role": "assistant", "content": result.text}
    if calls:
        assistant["tool_calls"] = calls
    conversation = [{"role": "user", "content": item.prompt}, assistant]
    checks = datagen.check_rules(rules, conversation, item.category, judge)
    valid = None
    if item.tools and calls:
        # Structural validity only (declared tool, arguments satisfy its schema); content rules are scored above.
        record = {"messages": conversation, "tools": item.tools, "category": item.category}
        valid = not datagen.validate_example(ws, record, rules=False)
    elif item.tools and item.expects_tool_call:
        valid = False  # a call was expected and none came; a prompt that needs none does not count
    return Answer(arm=arm, prompt_index=index, text=result.text, tool_calls=result.tool_calls,
                  prompt_tokens=result.prompt_tokens, rules={c.name: c.passed for c in checks if c.applicable},
                  tool_calls_valid=valid)


def _summarise(arm: str, model: router.ModelConfig, with_system: bool, answers: list[Answer]) -> ArmSummary:
    outcomes = [(name, passed) for a in answers for name, passed in a.rules.items()]
    per_rule: dict[str, float] = {}
    for name in sorted({name for name, _ in outcomes}):
        results = [passed for rule, passed in outcomes if rule == name]
        per_rule[name] = round(sum(results) / len(results), 4)
    adherence = sum(passed for _, passed in outcomes) / len(outcomes) if outcomes else 0.0
    full = sum(all(a.rules.values()) for a in answers) / len(answers) if answers else 0.0
    tooled = [a.tool_calls_valid for a in answers if a.tool_calls_valid is not None]
    return ArmSummary(arm=arm, model=model.model or model.name, with_system_prompt=with_system,
                      adherence=round(adherence, 4), per_rule=per_rule, prompts_fully_adherent=round(full, 4),
                      tool_call_validity=round(sum(tooled) / len(tooled), 4) if tooled else None,
                      prompt_tokens_mean=round(sum(a.prompt_tokens for a in answers) / max(1, len(answers)), 1))


def write_report(report: EvalReport, out_dir: Path, *, samples: int = 5) -> dict[str, Path]:
    """eval.json (everything), eval.md (tables + answers side by side), eval.png (adherence per rule)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "eval.json", "markdown": out_dir / "eval.md", "plot": out_dir / "eval.png"}
    paths["json"].write_text(report.model_dump_json(indent=2), encoding="utf-8")
    paths["markdown"].write_text(eval_report.markdown(report, samples), encoding="utf-8")
    eval_report.plot(report, paths["plot"])
    return paths
