"""router — complexity-routed completions over HTTP (OpenAI + Anthropic APIs) to local or hosted models.

Public surface: config and its TOML, the app and `serve`, one blocking chat call per model (training's eval), the
bundled GGUF, and the scorer-head functions `engrain router` drives (loaded on first use: no FastAPI or numpy)."""
from importlib import import_module
from typing import Any

from router.config import BUNDLED_HEAD, TOML_TEMPLATE, ModelConfig, RouterConfig, bundled_gguf, load_config, \
    router_toml
from router.errors import InputError, ProviderError
from router.providers import ChatResult, chat

_LAZY = {  # public name -> (module, its name there): imported on first use
    "create_app": ("app", "create_app"), "serve": ("listen", "serve"), "threshold_of": ("policy", "threshold_of"),
    "tier_by_score": ("policy", "tier_by_score"), "load_head": ("head", "load_head"),
    "save_head": ("head", "save_head"), "head_scores": ("scoring", "head_scores"), "train_head": ("recipe", "train"),
    "cross_validated_scores": ("recipe", "cross_validated_scores"), "Labelled": ("evaluate", "Labelled"),
    "load_labels": ("evaluate", "load_labels"), "evaluate_scores": ("evaluate", "evaluate"),
    "bootstrap": ("evaluate", "bootstrap"), "threshold_for": ("evaluate", "threshold_for"),
    "learn_head": ("learn", "learn"), "load_tasks": ("learn", "load_tasks"), "label_tasks": ("learn", "label_tasks"),
    "labels_from_feedback": ("learn", "from_feedback"), "feedback_outcomes": ("decisions", "outcomes"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'router' has no attribute {name!r}")
    module, attr = _LAZY[name]
    return getattr(import_module(f"router.{module}"), attr)


__all__ = ["BUNDLED_HEAD", "TOML_TEMPLATE", "ChatResult", "InputError", "ModelConfig", "ProviderError",
           "RouterConfig", "bundled_gguf", "chat", "load_config", "router_toml", *_LAZY]
