#!/usr/bin/env bash
# Compiles the Metal backend for Apple silicon (issue 24) on a machine that is not a Mac: a type and
# borrow check of the addon with the `metal` feature for aarch64-apple-darwin. Nothing is linked
# (that needs macOS's SDK); the release workflow builds the real macOS arm64 binary, with Metal.
#
# Two C dependencies cannot be compiled for macOS here, so the check leaves them out:
# - oniguruma (tokenizers' regex engine): its build script takes the system's headers through
#   pkg-config instead (RUSTONIG_SYSTEM_LIBONIG=1; Debian's libonig-dev, installed if missing);
# - mimalloc, the addon's allocator, a default feature unrelated to Metal (--no-default-features).
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add aarch64-apple-darwin
if ! pkg-config --exists oniguruma; then
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo apt-get update -qq && $sudo apt-get install -y -qq libonig-dev
fi
RUSTONIG_SYSTEM_LIBONIG=1 PKG_CONFIG_ALLOW_CROSS=1 \
  cargo check --release --locked --target aarch64-apple-darwin -p nexttoken-node --no-default-features --features metal
