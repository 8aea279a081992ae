#!/usr/bin/env bash
# Installs every build and test dependency of densekv from Debian packages (Debian 12 / Ubuntu 24.04).
# Called by the README and by .ci/run. Safe to run again.
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build pkg-config git
  libcpp-httplib-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libutf8proc-dev libpcre2-dev libxxhash-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-jinja2 python3-numpy
  clang libclang-rt-14-dev
)
# Node.js and npm run the e2e tests (the official OpenAI SDK, installed by the test setup). Any
# nodejs >= 18 will do: a NodeSource nodejs already carries npm, so only add Debian's when absent.
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "densekv: dependencies installed"
