"""eval.md and eval.png: the per-rule table with 95% intervals first, the old pooled figures second."""
from __future__ import annotations

from pathlib import Path

from training.eval_stats import RuleStat


def headline_sentence(report) -> str:
    substantive = [v for v in report.rules if v.substantive]
    names = ", ".join(v.rule for v in substantive if v.transferred) or "none"
    text = (f"Behaviours transferred: **{report.behaviours_transferred} of {len(substantive)}** substantive rules "
            f"({names}).")
    tuned = report.macro_adherence.get("finetuned_without_prompt")
    if tuned is not None:
        text += f" Macro adherence over substantive rules, fine-tuned without the prompt: {tuned:.1%}"
        reference = report.macro_adherence.get("base_with_prompt")
        text += f" (base with the prompt: {reference:.1%})." if reference is not None else "."
    return text


def cell(stat: RuleStat | None) -> str:
    if stat is None or not stat.applicable:
        return "— (0 prompts)"
    return f"{stat.passed}/{stat.applicable} = {stat.rate:.0%} [{stat.low:.0%}–{stat.high:.0%}]"


def markdown(report, samples: int) -> str:
    arms = [arm.arm for arm in report.arms]
    lines = [f"# Behaviour eval — run {report.run_id}", "",
             f"{len(report.prompts)} held-out prompts, greedy, seed {report.seed}, max {report.max_tokens} tokens. "
             f"System prompt: {report.system_prompt_tokens} tokens. "
             f"Prompt tokens saved by the fine-tune: {report.prompt_tokens_saved_pct:.1%}.", "",
             headline_sentence(report), "",
             "## Per rule (passes / applicable prompts = rate [Wilson 95% interval])", "",
             "A rule is substantive when the base model without the prompt breaks it on ≥ 10% of its prompts; "
             "transferred when the fine-tune without the prompt keeps it on ≥ 90% and the base model with the "
             "prompt is not above the fine-tune's interval.", "",
             "| rule | kind | status |" + "".join(f" {a} |" for a in arms) + " note |",
             "|---|---|---|" + "---|" * len(arms) + "---|"]
    for v in report.rules:
        lines.append(f"| {v.rule} | {v.kind} | {v.status} |" + "".join(f" {cell(v.arms.get(a))} |" for a in arms)
                     + f" {v.note} |")
    lines += ["", "## Pooled over (prompt, rule) pairs (secondary: rules that cannot fail inflate it)", "",
              "| arm | system prompt | adherence | prompts fully adherent | tool calls valid | prompt tokens |",
              "|---|---|---|---|---|---|"]
    for arm in report.arms:
        tools = "—" if arm.tool_call_validity is None else f"{arm.tool_call_validity:.0%}"
        lines.append(f"| {arm.arm} | {'yes' if arm.with_system_prompt else 'no'} | {arm.adherence:.1%} | "
                     f"{arm.prompts_fully_adherent:.1%} | {tools} | {arm.prompt_tokens_mean:.0f} |")
    lines += ["", "## Answers side by side", ""]
    for index, item in enumerate(report.prompts[:samples]):
        lines += [f"### {index + 1}. {item.prompt}", ""]
        for name in arms:
            answer = next(a for a in report.answers if a.arm == name and a.prompt_index == index)
            failed = [rule for rule, ok in answer.rules.items() if not ok]
            verdict = "follows every rule" if not failed else "breaks " + ", ".join(failed)
            lines += [f"**{name}** ({verdict}):", "", "> " + answer.text.strip().replace("\n", "\n> "), ""]
    return "\n".join(lines) + "\n"


def plot(report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rules = [v for v in report.rules if v.status != "applied to no prompt"]
    labels = [v.rule + ("" if v.substantive else "\n(held without training)") for v in rules]
    width = 0.8 / max(1, len(report.arms))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(rules) + 1), 4.5))
    for n, arm in enumerate(report.arms):
        stats = [v.arms.get(arm.arm) for v in rules]
        values = [s.rate if s and s.rate is not None else 0.0 for s in stats]
        below = [max(0.0, (s.rate - s.low)) if s and s.rate is not None else 0.0 for s in stats]
        above = [max(0.0, (s.high - s.rate)) if s and s.rate is not None else 0.0 for s in stats]
        ax.bar([i + n * width for i in range(len(rules))], values, width, yerr=[below, above], capsize=3,
               label=arm.arm.replace("_", " "))
    ax.set_xticks([i + width * (len(report.arms) - 1) / 2 for i in range(len(rules))], labels, rotation=20,
                  ha="right", fontsize=8)
    ax.axhline(0.9, color="grey", linestyle=":", linewidth=1)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("adherence (95% Wilson interval)")
    substantive = sum(v.substantive for v in report.rules)
    ax.set_title(f"Run {report.run_id}: {report.behaviours_transferred} of {substantive} substantive rules "
                 f"transferred ({report.prompt_tokens_saved_pct:.0%} fewer prompt tokens)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
