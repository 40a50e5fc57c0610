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

ARMS = ("base_with_prompt", "base_without_prompt", "finetuned_without_prompt")


class EvalPrompt(BaseModel):
    prompt: str
    category: str | None = None
    tools: list[dict[str, Any]] | None = None


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

    def arm(self, name: str) -> ArmSummary | None:
        return next((a for a in self.arms if a.arm == name), None)

    def headline(self) -> dict[str, float | None]:
        def value(name: str) -> float | None:
            summary = self.arm(name)
            return summary.adherence if summary else None

        return {"adherence_base_with_prompt": value("base_with_prompt"),
                "adherence_base_without_prompt": value("base_without_prompt"),
                "adherence_finetuned_without_prompt": value("finetuned_without_prompt"),
                "prompt_tokens_saved_pct": self.prompt_tokens_saved_pct}


def load_prompts(path: Path) -> list[EvalPrompt]:
    """JSONL of {"prompt", "category"?, "tools"?}, or any example file (its first user turn is the prompt)."""
    prompts = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise datagen.DatagenError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if "prompt" not in record and record.get("messages"):
            user = next((m.get("content") for m in record["messages"] if m.get("role") == "user"), None)
            record = {"prompt": user, "category": record.get("category"), "tools": record.get("tools")}
        if not isinstance(record.get("prompt"), str) or not record["prompt"].strip():
            raise datagen.DatagenError(f"{path}:{number}: needs a non-empty \"prompt\" string")
        prompts.append(EvalPrompt.model_validate(record))
    if not prompts:
        raise datagen.DatagenError(f"{path} holds no prompts")
    return prompts


def system_prompt(ws: datagen.Workspace) -> str:
    """The context the fine-tune replaces: every knowledge source, reassembled in file order."""
    chunks = sorted(datagen.list_knowledge(ws), key=lambda c: (c.source, c.line_start))
    if not chunks:
        raise datagen.DatagenError("the workspace has no knowledge to build a system prompt from; "
                                   "run `engrain knowledge add CLAUDE.md rules/ ...` first")
    return "\n\n".join(chunk.text.strip() for chunk in chunks)


def evaluate(ws: datagen.Workspace, run_id: str, *, base: router.ModelConfig, finetuned: router.ModelConfig,
             prompts: list[EvalPrompt], seed: int = 0, max_tokens: int = 200, base_with_prompt: bool = True,
             on_answer: Callable[[Answer], None] | None = None) -> EvalReport:
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
            answer = _score(ws, rules, arm, index, item, result)
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
    return EvalReport(run_id=run_id, seed=seed, max_tokens=max_tokens, prompts=prompts,
                      system_prompt_tokens=system_tokens, arms=summaries, answers=answers,
                      prompt_tokens_saved_pct=round(saved, 4))


def _score(ws: datagen.Workspace, rules: list, arm: str, index: int, item: EvalPrompt,
           result: router.ChatResult) -> Answer:
    calls = [{"id": f"call_{n}", "type": "function",
              "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
             for n, c in enumerate(result.tool_calls)]
    assistant: dict[str, Any] = {"role": "assistant", "content": result.text}
    if calls:
        assistant["tool_calls"] = calls
    conversation = [{"role": "user", "content": item.prompt}, assistant]
    checks = datagen.check_rules(rules, conversation, item.category)
    valid = None
    if item.tools:
        # Structural validity only (declared tool, arguments satisfy its schema); content rules are scored above.
        record = {"messages": conversation, "tools": item.tools, "category": item.category}
        valid = bool(calls) and not datagen.validate_example(ws, record, rules=False)
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
    paths["markdown"].write_text(_markdown(report, samples), encoding="utf-8")
    _plot(report, paths["plot"])
    return paths


def _markdown(report: EvalReport, samples: int) -> str:
    rules = sorted({name for arm in report.arms for name in arm.per_rule})
    lines = [f"# Behaviour eval — run {report.run_id}", "",
             f"{len(report.prompts)} held-out prompts, greedy, seed {report.seed}, max {report.max_tokens} tokens. "
             f"System prompt: {report.system_prompt_tokens} tokens. "
             f"Prompt tokens saved by the fine-tune: {report.prompt_tokens_saved_pct:.1%}.", "",
             "| arm | system prompt | adherence | prompts fully adherent | tool calls valid | prompt tokens |"
             + "".join(f" {r} |" for r in rules),
             "|---|---|---|---|---|---|" + "---|" * len(rules)]
    for arm in report.arms:
        tools = "—" if arm.tool_call_validity is None else f"{arm.tool_call_validity:.0%}"
        lines.append(f"| {arm.arm} | {'yes' if arm.with_system_prompt else 'no'} | {arm.adherence:.1%} | "
                     f"{arm.prompts_fully_adherent:.1%} | {tools} | {arm.prompt_tokens_mean:.0f} |"
                     + "".join(f" {arm.per_rule[r]:.0%} |" if r in arm.per_rule else " — |" for r in rules))
    lines += ["", "## Answers side by side", ""]
    names = [arm.arm for arm in report.arms]
    for index, item in enumerate(report.prompts[:samples]):
        lines += [f"### {index + 1}. {item.prompt}", ""]
        for name in names:
            answer = next(a for a in report.answers if a.arm == name and a.prompt_index == index)
            failed = [rule for rule, ok in answer.rules.items() if not ok]
            verdict = "follows every rule" if not failed else "breaks " + ", ".join(failed)
            lines += [f"**{name}** ({verdict}):", "", "> " + answer.text.strip().replace("\n", "\n> "), ""]
    return "\n".join(lines) + "\n"


def _plot(report: EvalReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rules = sorted({name for arm in report.arms for name in arm.per_rule}) + ["overall"]
    width = 0.8 / len(report.arms)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(rules)), 4))
    for n, arm in enumerate(report.arms):
        values = [arm.per_rule.get(rule, 0.0) for rule in rules[:-1]] + [arm.adherence]
        ax.bar([i + n * width for i in range(len(rules))], values, width, label=arm.arm.replace("_", " "))
    ax.set_xticks([i + width * (len(report.arms) - 1) / 2 for i in range(len(rules))], rules, rotation=20,
                  ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("adherence")
    ax.set_title(f"Rule adherence — run {report.run_id} "
                 f"({report.prompt_tokens_saved_pct:.0%} fewer prompt tokens)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
