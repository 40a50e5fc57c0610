#!/usr/bin/env bash
# The README's second command: install everything the tests drive, then run them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "train,local,mlx,unsloth,dev"
# Real MCP clients the tests drive: Claude Code and the MCP Inspector CLI, kept local to the checkout.
if command -v npm >/dev/null 2>&1; then
  # Pinned: on Node 20 npm's engine-aware resolution would otherwise pick years-old releases.
  npm install --silent --no-audit --no-fund --prefix .tools \
    @anthropic-ai/claude-code@2.1.330 @modelcontextprotocol/inspector@2.12.0
fi
# Headless Chromium for the review page's browser tests: Debian's packages, driven by selenium (no browser download).
if ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
# A real Redis server for the router test where routers on two machines share cooldowns through it.
if ! command -v redis-server >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
if ! command -v curl >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  # the README's Claude Code commands (run as written by tests/router/test_claude_code.py) wait with curl
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
fi
# Go, whose text/template is what Ollama fills a Modelfile TEMPLATE with: the template test renders it for real.
if ! command -v go >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
fi
# PostgreSQL server binaries: the store tests start a throwaway server of their own (tests/postgres_server.py).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v pg_ctl >/dev/null 2>&1 \
    && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
