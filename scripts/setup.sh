#!/usr/bin/env bash
# Creates .venv at the repository root and installs engrain with the extras named in $1.
# Safe to run again: pip skips what is already satisfied. Every install is pinned by constraints.txt (the versions
# the suite passed on; regenerate with scripts/lock.sh), so a fresh machine gets what the tests ran.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-train,local}"
pins=(-c constraints.txt)
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first: any later requirement that admits a newer torch would otherwise pull the newest CUDA build.
if [ "$(uname -s)" = "Linux" ] && ! command -v nvidia-smi >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q "${pins[@]}" "torch==2.13.0"
fi
.venv/bin/python -m pip install -q "${pins[@]}" -e ".[${extras}]"
case ",${extras}," in
  *,unsloth,*) .venv/bin/python -m pip install -q "${pins[@]}" --no-deps unsloth==2026.10.9 unsloth_zoo==2026.10.9 \
                 cut_cross_entropy==25.1.1 ;;
esac
# Once per machine, cached in ~/.cache/engrain (both come from what was just installed, nothing else):
# the router's static MiniLM, distilled from the bundled MiniLM (~30 s), and llama.cpp's GGUF converters,
# unpacked from the llama-cpp-python sdist on the package index (~1 min).
.venv/bin/python -c "from router.scoring import embedder; embedder()"
case ",${extras}," in
  *,train,*) .venv/bin/python -c "from training.llamacpp import converter_dir; converter_dir()" ;;
esac
