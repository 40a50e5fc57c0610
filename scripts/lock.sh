#!/usr/bin/env bash
# Regenerates constraints.txt (the pinned versions scripts/setup.sh installs with `pip install -c`) from the
# working .venv, after a dependency was added or upgraded and the suite passed on it. torch stays first, without its
# local build label (+cpu): `torch==X` admits the CPU and CUDA builds of X alike.
set -euo pipefail
cd "$(dirname "$0")/.."
freeze="$(.venv/bin/python -m pip freeze --exclude-editable | grep -v '^#' | grep -v '^-e ')"
torch="$(printf '%s\n' "$freeze" | grep -i '^torch==' | sed 's/+.*//')"
{
  echo "# Pinned versions the test suite passed on; scripts/setup.sh installs with \`pip install -c constraints.txt\`."
  echo "# Regenerate from a working .venv with: bash scripts/lock.sh"
  echo "$torch"
  printf '%s\n' "$freeze" | grep -iv '^torch==' | LC_ALL=C sort -f
} > constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) pins"
