#!/usr/bin/env bash
# Lints .github/workflows with actionlint (nothing here can run GitHub Actions), installing the
# pinned version from the Go module proxy into target/tools when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
version=v1.7.12
tool=target/tools/actionlint
if [ ! -x "$tool" ] || [ "$("$tool" -version | head -1)" != "$version" ]; then
  GOBIN="$PWD/target/tools" go install "github.com/rhysd/actionlint/cmd/actionlint@$version"
fi
"$tool" -color .github/workflows/*.yml
