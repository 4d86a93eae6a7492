#!/usr/bin/env bash
# System packages the project needs beside its pip stack: redis-server (the cache of `dc003 serve`, and a
# real Redis for its tests). Installs it with apt-get when it is missing (Debian / Ubuntu; sudo when not root).
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: redis-server is not installed and apt-get is not available: install Redis >= 7 yourself" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  command -v sudo >/dev/null 2>&1 || { echo "error: installing redis-server needs root or sudo" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
redis-server --version
