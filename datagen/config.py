"""engrain.toml's dataset part: `[dataset]`, `[[plan.categories]]`, `[[rules]]`, and the default template."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, get_origin

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from datagen.errors import DatagenError
from datagen.schema import Category, Rule


class DatasetConfig(BaseModel):
    name: str = "engrain"
    max_chars: int = Field(24_000, gt=0, description="longest example accepted, all message text counted")
    minhash_threshold: float = Field(0.8, gt=0, le=1, description="estimated Jaccard over word 3-grams")
    semantic_threshold: float = Field(0.9, gt=0, le=1, description="cosine similarity of MiniLM embeddings")
    embedding_model: str = Field("bundled", description="'bundled' (MiniLM) or a sentence-transformers path")
    database_url: str | None = Field(None, description="postgresql://USER@HOST/DB keeps the dataset in PostgreSQL;"
                                                       " unset: the SQLite file .engrain/engrain.db")
    judge_model: str | None = Field(None, description="litellm PROVIDER/MODEL that grades `judge` rules when "
                                                     "examples are validated")
    judge_api_base: str | None = None
    categories: list[Category] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str | None) -> str | None:
        if url and not url.startswith(("postgresql://", "postgres://", "sqlite:///")):
            raise ValueError("must be a postgresql://USER@HOST:PORT/DB (or sqlite:///PATH) URL")
        return url or None

    @model_validator(mode="after")
    def _unique_names(self) -> "DatasetConfig":
        for label, names in (("category", [c.name for c in self.categories]), ("rule", [r.name for r in self.rules])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{label} names must be unique in engrain.toml; repeated: {', '.join(dupes)}")
        return self

    def category(self, name: str) -> Category | None:
        return next((c for c in self.categories if c.name == name), None)


def parse_config(raw: dict[str, Any]) -> DatasetConfig:
    """Build the dataset config from the whole parsed engrain.toml; ENGRAIN_<FIELD> env vars override [dataset]."""
    settings = env_overrides(raw.get("dataset", {}), DatasetConfig, "ENGRAIN_")
    settings["categories"] = raw.get("plan", {}).get("categories", [])
    settings["rules"] = raw.get("rules", [])
    try:
        return DatasetConfig.model_validate(settings)
    except ValidationError as exc:
        raise DatagenError(f"engrain.toml is invalid ({setting_problems(exc, 'dataset')}); fix it and run the "
                           "command again") from exc


def env_overrides(section: Mapping[str, Any], model: type[BaseModel], prefix: str,
                  env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A config section with each setting replaced by a non-empty $<prefix><SETTING> (a list of strings from a
    comma-separated value; lists of tables are not overridable). Every section (engrain.toml [dataset],
    [training]) takes its overrides here."""
    env = os.environ if env is None else env
    merged = dict(section)
    for field, info in model.model_fields.items():
        value = env.get(f"{prefix}{field.upper()}")
        if value and info.annotation == list[str]:
            merged[field] = value.split(",")
        elif value and get_origin(info.annotation) is not list:
            merged[field] = value
    return merged


def setting_problems(exc: ValidationError, section: str) -> str:
    """One `where: what` per invalid setting, the way every config error is reported."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or section}: {e['msg']}" for e in exc.errors())


DEFAULT_TOML = '''\
# engrain.toml — everything engrain needs to know about this project's dataset, training and routing.
# State (the example database, training runs, caches) lives in .engrain/ beside this file.

[dataset]
# Each setting here can be overridden for one run with ENGRAIN_<SETTING>, e.g. ENGRAIN_SEMANTIC_THRESHOLD=0.95.
name = "engrain"
# Longest example accepted, counting every message's text. Long trajectories dilute what the model learns.
max_chars = 24000
# Near-duplicate thresholds: MinHash estimates Jaccard similarity of word 3-grams (lexical copies);
# the embedding layer compares MiniLM vectors of the user turns (the same task reworded). Lower = stricter.
# Measured by bench/dedup_semantic.py on labelled paraphrases vs same-topic different tasks: 0.9 flags 6% of
# paraphrases (precision 1.00); 0.8 flags 62% (precision 0.95); 0.7 flags 81% (precision 0.84).
minhash_threshold = 0.8
semantic_threshold = 0.9
# "bundled" uses the MiniLM shipped with engrain; any sentence-transformers folder works too.
embedding_model = "bundled"
# Where the dataset lives. Unset: .engrain/engrain.db (SQLite), fine for one machine and many local processes.
# A team sharing one dataset from several machines points every workspace at one PostgreSQL database
# (move an existing one there with `engrain db copy --to URL`):
# database_url = "postgresql://engrain@db.internal:5432/engrain"

# The plan: what the dataset should teach, and how much of each. Quotas drive `engrain coverage` and the
# "remaining" count in every generation brief. Add, remove or rename categories freely (slugs: a-z, 0-9, -).
# The default follows the project's seed plan: seven categories, 2,525 examples in all.
#
# Knowledge chunks are mapped to the categories they serve, and a brief hands out only its category's chunks:
# `sources` (globs over knowledge source paths, e.g. ["rules/tools.md", "skills/tdd/*"]) and `keywords` (whole
# words in a chunk) claim chunks; chunks neither claims go to the nearest description. After editing the plan,
# run `engrain knowledge map`; `engrain knowledge tag CHUNK -c CATEGORY [--remove]` overrides one mapping.

[[plan.categories]]
name = "tool-use"
quota = 600
description = "Calling the agent's tools well, semantic code navigation included: the right tool, valid arguments, reading results before acting."
keywords = ["Grep", "Glob", "Read", "Edit", "Bash", "tool call", "tool calls"]
guidance = """
Show a realistic task that needs one or more tool calls (search, read, edit, run). Declare every tool the
example uses in "tools" with a JSON schema, and make each call's arguments satisfy it. Follow each call with
its result (role "tool", matching tool_call_id), then an assistant turn that uses what came back. Prefer
finding code by meaning (symbols, definitions, references) over blind text search, batch independent calls in
one turn, and answer with file:line anchors quoted from the results.
"""

[[plan.categories]]
name = "skills-workflows"
quota = 400
description = "Following the project's named workflows: brainstorming, test-driven development, systematic debugging."
keywords = ["skill", "workflow", "brainstorm"]
guidance = """
Each example walks one workflow from the project's sources step by step: brainstorm options before
choosing; write a failing test, make it pass, refactor; reproduce, isolate, fix, and verify a bug. Name the
step being taken, and do not skip the verification at the end.
"""

[[plan.categories]]
name = "agentic-planning"
quota = 450
description = "Agentic work on multi-step tasks: exploring and planning before acting, TDD and debugging loops, checking assumptions."
guidance = """
Give a multi-step task. The assistant explores just enough to plan, writes a short ordered plan with how
each step will be verified, then starts on step one. Show plans being revised when something new is found.
"""

[[plan.categories]]
name = "craftsmanship"
quota = 300
description = "Writing code that stays easy to change: DRY, SOLID, small functions, careful refactoring."
guidance = """
Show a concrete change done well: extracting duplicated logic, splitting a class with two jobs, naming
things for what they hold, refactoring under passing tests. Include the code; explain the trade-off briefly.
"""

[[plan.categories]]
name = "collaboration"
quota = 250
description = "Working with the human: clarifying questions, progress updates, admitting uncertainty."
guidance = """
Show the assistant asking one precise question when a request is ambiguous, reporting what it did and what
is left, and saying plainly when it is unsure or was wrong. Keep the tone direct and free of flattery.
"""

[[plan.categories]]
name = "problem-solving"
quota = 275
description = "Reasoning tools for hard problems: root-cause analysis, the scale game, inversion, simplification."
guidance = """
Pick a problem where the obvious fix is wrong. Show the assistant finding the root cause (not the symptom),
trying extremes of scale, inverting the question, or simplifying until the problem is solvable.
"""

[[plan.categories]]
name = "code-review"
quota = 250
description = "Reviewing changes: correctness first, then clarity, tests and risk, with actionable comments."
guidance = """
Present a diff or snippet and a review that finds the real issues (bugs, missing tests, unsafe edges)
before style, cites lines, and proposes concrete fixes. Praise only what is specifically good.
"""

# Rules are machine-checked behaviours. They validate every example of the categories they name and score
# the fine-tuned model's replies in training's behaviour eval. The default plan has none: derive them from
# your own sources (CLAUDE.md, rules files). Kinds: starts_with, regex_must, regex_must_not, not_name,
# max_chars, min_chars, max_code_lines; tool_preferred (tool = "FindSymbol", instead_of = ["Grep"]: the
# first of them called is `tool`), parallel_tool_calls (independent calls in one turn; value = how many),
# tool_before_answer (the reply's first message calls a tool, or `tool`); judge (a model grades the reply
# against `description`: set judge_model = "PROVIDER/MODEL" in [dataset] for validation, --judge for eval).
# Example:
#
# [[rules]]
# name = "run-tests-before-done"
# description = "Never claim a change is done without having run the tests."
# kind = "regex_must"
# pattern = "(?i)tests? (pass|passed|are green)"
# categories = ["skills-workflows"]
# when_reply = "(?i)\\\\bdone\\\\b"        # only replies that say they are done
'''
