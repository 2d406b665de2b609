#!/usr/bin/env bash
# Installs the project into ./.venv on a fresh Debian/Ubuntu machine:
#   bash scripts/install.sh         the project
#   bash scripts/install.sh test    the project and what its tests need
# System libraries (OSMesa for MuJoCo's headless rendering on CPU machines) come from apt when missing;
# that step needs root or sudo. torch: the CPU wheel pinned at 2.13.0 on machines without an NVIDIA GPU,
# the default (CUDA) build where nvidia-smi answers, and whatever torch is already importable is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=${1:-}

need=()
ldconfig -p 2>/dev/null | grep -q 'libOSMesa\.so' || need+=(libosmesa6)
# the report tests open the HTML in Debian's Chromium, driven by Playwright (which downloads no browser)
if [[ $extra == test ]]; then command -v chromium >/dev/null || need+=(chromium); fi
if ((${#need[@]})); then
  sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

[[ -x .venv/bin/python ]] || python3 -m venv .venv
py=.venv/bin/python
$py -m pip install -q --upgrade pip
if ! $py -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null && nvidia-smi >/dev/null 2>&1; then $py -m pip install -q torch; else $py -m pip install -q torch==2.13.0; fi
fi
$py -m pip install -q -e ".${extra:+[$extra]}"
echo "installed into .venv ($($py -c 'import torch; print("torch", torch.__version__)'))"
