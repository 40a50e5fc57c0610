"""The ChatML chat template every backend trains with, and the same template in the forms exporters need.

One template for training (jinja with `{% generation %}` marks, so transformers returns the assistant-token
mask), the GGUF (the same without the marks, which llama.cpp's jinja does not know) and Ollama (Go
template). SmolLM2's own template injects a default system prompt and drops tool calls; ours adds neither a
default system prompt (the point is behaviour without one) nor loses tool calls: they are written as
`<tool_call>{"name": ..., "arguments": ...}</tool_call>`, the Hermes/Qwen convention Ollama parses.
"""
from __future__ import annotations

import json
from typing import Any

from training import gojson

STOP = "<|im_end|>"
START = "<|im_start|>"
_TOOLS_INTRO = ("You can call these tools. To call one, reply with "
                '<tool_call>\\n{"name": <name>, "arguments": <arguments>}\\n</tool_call>.\\n<tools>\\n')

# Whitespace lives in string literals only, so trim_blocks/lstrip_blocks (transformers, llama-cpp-python)
# cannot change the output.
TRAIN_TEMPLATE = (
    "{%- set sys = messages[0].content if messages and messages[0].role == 'system' else '' -%}"
    "{%- if sys or tools -%}"
    "{{ '<|im_start|>system\\n' + sys }}"
    "{%- if tools -%}{%- if sys -%}{{ '\\n\\n' }}{%- endif -%}"
    "{{ '" + _TOOLS_INTRO + "' }}"
    "{%- for tool in tools -%}{{ tool['rendered'] if tool['rendered'] is defined else tool | tojson }}"
    "{{ '\\n' }}{%- endfor -%}"
    "{{ '</tools>' }}"
    "{%- endif -%}{{ '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if message.role == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message.content or '' }}"
    "{%- for call in message.tool_calls or [] -%}"
    "{%- if message.content or not loop.first -%}{{ '\\n' }}{%- endif -%}"
    "{%- set fn = call.function if call.function is defined else call -%}"
    "{{ '<tool_call>\\n{\"name\": \"' + fn.name + '\", \"arguments\": ' }}"
    "{{ fn.arguments if fn.arguments is string else fn.arguments | tojson }}{{ '}\\n</tool_call>' }}"
    "{%- endfor -%}{{ '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{%- elif message.role != 'system' -%}"
    "{{ '<|im_start|>' + message.role + '\\n' + (message.content or '') + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

CHAT_TEMPLATE = TRAIN_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")

# The same conversation layout in Ollama's Go template language (Modelfile TEMPLATE).
OLLAMA_TEMPLATE = (
    "{{- if or .System .Tools }}<|im_start|>system\n"
    "{{ if .System }}{{ .System }}{{ end }}"
    "{{- if .Tools }}{{ if .System }}\n\n{{ end }}" + _TOOLS_INTRO.replace("\\n", "\n")
    + "{{ range .Tools }}{{ . }}\n{{ end }}</tools>{{ end }}<|im_end|>\n{{ end }}"
    "{{- range $i, $_ := .Messages }}"
    "{{- $last := eq (len (slice $.Messages $i)) 1 }}"
    "{{- if eq .Role \"assistant\" }}{{ $content := .Content }}<|im_start|>assistant\n{{ .Content }}"
    "{{- range $j, $c := .ToolCalls }}{{ if or $content $j }}\n{{ end }}<tool_call>\n"
    "{\"name\": \"{{ $c.Function.Name }}\", \"arguments\": {{ $c.Function.Arguments }}}\n</tool_call>{{ end }}"
    "{{ if not $last }}<|im_end|>\n{{ end }}"
    "{{- else if ne .Role \"system\" }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
    "{{ if $last }}<|im_start|>assistant\n{{ end }}"
    "{{- end }}"
    "{{- end }}"
)


def normalize(record: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-style record as the template expects it: no null contents, tool calls kept, tools and call
    arguments pre-rendered as the JSON Ollama prints (training/gojson.py), so the served prompt is the trained one."""
    messages = []
    for m in record["messages"]:
        msg = {"role": m["role"], "content": m.get("content") or ""}
        if m.get("tool_calls"):
            msg["tool_calls"] = [{"type": "function", "function": {
                "name": c["function"]["name"], "arguments": _arguments(c["function"].get("arguments"))}}
                for c in m["tool_calls"]]
        messages.append(msg)
    # transformers accepts only dict tools, so the pre-rendered text rides in one.
    tools = [{**t, "rendered": gojson.tool(t)} for t in record.get("tools") or []]
    return {"messages": messages, "tools": tools or None}


def _arguments(value: Any) -> str:
    # OpenAI sends arguments as a JSON string; Ollama re-prints them from its own decoded object.
    if value is None or value == "":
        return "{}"
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return value
    return gojson.arguments(value) if isinstance(value, dict) else json.dumps(value, ensure_ascii=False)


def per_turn(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One example per assistant message, each ending at it (mlx-lm's --mask-prompt trains only the last)."""
    messages = record["messages"]
    return [{"messages": messages[: i + 1], **({"tools": record["tools"]} if record.get("tools") else {})}
            for i, m in enumerate(messages) if m["role"] == "assistant"]
