#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install mtl_jax with its test extras; a no-op when
# pyproject.toml has not changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.mtl_jax-installed"
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[test]"
  .venv/bin/python -m pip install --quiet --no-deps "dante-corpora>=2.0.5"
  echo "$wanted" > "$stamp"
fi
# Fashion-MNIST ships in Debian's dataset-fashion-mnist (read by the multi_fashion builder).
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "note: install Debian's dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist) for multi_fashion" >&2
  fi
fi
# PostgreSQL server binaries (initdb, pg_ctl) for the sweep tests' throwaway database on loopback.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "note: install Debian's postgresql (sudo apt-get install postgresql) for tests/tuning" >&2
  fi
fi
