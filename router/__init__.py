"""router — complexity-routed completions over HTTP (OpenAI + Anthropic APIs) to local or hosted models.

Public surface: the config models and loader, the app factory, one blocking chat call per model (used by
training's eval), the bundled GGUF, and the TOML fragment `engrain init` appends.
"""
from router.config import TOML_TEMPLATE, ModelConfig, RouterConfig, bundled_gguf, load_config
from router.errors import ProviderError
from router.providers import ChatResult, chat


def create_app(config=None, **kwargs):  # noqa: ANN001, ANN201 - imports FastAPI only when an app is wanted
    from router.app import create_app as _create_app

    return _create_app(config, **kwargs)


__all__ = ["TOML_TEMPLATE", "ChatResult", "ModelConfig", "ProviderError", "RouterConfig", "bundled_gguf", "chat",
           "create_app", "load_config"]
