#!/usr/bin/env bash
# Runs the race and lifecycle tests (and the damaged-files catalogue) against an AddressSanitizer
# build of the addon. Run by hand (Linux x86-64, nightly Rust, gcc's libasan), not in CI: the
# instrumented build takes a while and the tests run ~2-3x slower.
#
#   bash scripts/sanitize.sh [ava test files...]      # default: races, lifecycle, files catalogue
#   VALGRIND=1 bash scripts/sanitize.sh               # also run a short load/generate/dispose script under valgrind
#
# How: the addon is built with `-Zsanitizer=address` and without mimalloc (--no-default-features:
# mimalloc hands out memory from its own pages, where ASan sees no allocation boundaries), into
# target/asan so that the normal build is untouched, and loaded through napi-rs'
# NAPI_RS_NATIVE_LIBRARY_PATH. Node itself is not instrumented: the ASan runtime is preloaded
# into it (LD_PRELOAD), which also intercepts Node's malloc/free, and leak detection is off since
# Node does not free everything at exit. ASan writes each report to $REPORTS/asan.<pid>; any
# report fails the run, as does any failing test.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-gnu
ASAN_TARGET_DIR=target/asan
REPORTS=$(mktemp -d -t nexttoken-asan-XXXXXX)
RUNTIME=$(gcc -print-file-name=libasan.so)
[ -f "$RUNTIME" ] || { echo "gcc's libasan.so was not found (apt-get install libasan8 / gcc)" >&2; exit 2; }

# --target: the sanitizer flag then applies to the addon's crates only, not to build scripts and
# proc macros (which run on the host, uninstrumented). The standard library is the precompiled
# one (no -Zbuild-std): its code is not instrumented, but every allocation still goes through
# the preloaded runtime, so use-after-free and overflows in our crates and their dependencies
# are caught. -Cunsafe-allow-abi-mismatch: that precompiled std was built without the flag.
# (The release profile strips debug info, so reports name functions, not lines.)
echo "== building the addon with AddressSanitizer (target/asan)"
RUSTFLAGS="-Zsanitizer=address -Cunsafe-allow-abi-mismatch=sanitizer -Cdebuginfo=1 -Cforce-frame-pointers=yes" \
  CARGO_TARGET_DIR=$ASAN_TARGET_DIR \
  cargo +nightly build --release --locked -p nexttoken-node --no-default-features --target $TARGET
ADDON=$PWD/$ASAN_TARGET_DIR/$TARGET/release/nexttoken.asan.node
cp "$ASAN_TARGET_DIR/$TARGET/release/libnexttoken_node.so" "$ADDON"
symbols=$(nm -D "$ADDON") # (not piped into grep -q: with pipefail, nm's SIGPIPE fails the test)
grep -q __asan_init <<< "$symbols" || { echo "the addon is not instrumented" >&2; exit 2; }
if grep -qi mi_malloc <<< "$symbols"; then echo "mimalloc is still linked in" >&2; exit 2; fi

# The TypeScript (index.js, lib/) must be built: `npm run build:ts`.
[ -f index.js ] || npm run build:ts

export NAPI_RS_NATIVE_LIBRARY_PATH=$ADDON
export LD_PRELOAD=$RUNTIME
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:log_path=$REPORTS/asan:symbolize=1"
# The tests' time limits (an exit within a second...) are for a plain build: this one is slower.
export NEXTTOKEN_TEST_SLOWDOWN=3
# Every Node started from here (ava's workers, the tests' children) inherits these.

# Proves that the runtime is live and reports land where they are looked for: a deliberate heap
# overflow in a throwaway C program must leave a report.
probe=$REPORTS/probe
printf '#include <stdlib.h>\nint main(void){char*p=malloc(4);volatile int i=4;p[i]=1;free(p);return 0;}\n' > "$probe.c"
gcc -fsanitize=address -o "$probe" "$probe.c"
"$probe" 2>/dev/null || true
ls "$REPORTS"/asan.* > /dev/null 2>&1 || { echo "ASan does not write reports to $REPORTS" >&2; exit 2; }
rm -f "$REPORTS"/asan.*

status=0
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(__test__/races.spec.ts __test__/lifecycle.spec.ts __test__/catalogue/files.spec.ts)
echo "== ava ${files[*]} (addon: $ADDON)"
# 10-minute timeout per test: instrumented code and a preloaded runtime are slower.
npx ava --timeout=10m "${files[@]}" || status=$?

if [ "${VALGRIND:-0}" = 1 ]; then
  # valgrind and ASan do not mix: the plain release addon, mimalloc left out so that valgrind sees
  # each allocation (napi's target dir: only this crate is rebuilt; the next `npm run build`
  # puts mimalloc back), under memcheck, for a short script: load, every kind of
  # call, a racing dispose(), models left to the GC.
  echo "== valgrind"
  unset LD_PRELOAD ASAN_OPTIONS
  cargo build --release --locked -p nexttoken-node --no-default-features --target $TARGET
  export NAPI_RS_NATIVE_LIBRARY_PATH=$PWD/target/$TARGET/release/nexttoken.valgrind.node
  cp target/$TARGET/release/libnexttoken_node.so "$NAPI_RS_NATIVE_LIBRARY_PATH"
  valgrind --leak-check=no --trace-children=no --log-file="$REPORTS/valgrind.%p" \
    node --expose-gc scripts/sanitize-smoke.mjs __test__/fixtures/tiny-gpt2 || status=$?
  # Node's JIT and GC upset memcheck on their own; only errors with a frame in the addon count.
  if grep -qE '^==[0-9]+== +(at|by) .*nexttoken\.valgrind\.node' "$REPORTS"/valgrind.*; then
    echo "== valgrind errors in the addon:" >&2
    cat "$REPORTS"/valgrind.* >&2
    status=1
  fi
  grep -h 'ERROR SUMMARY' "$REPORTS"/valgrind.* || true
fi

if ls "$REPORTS"/asan.* > /dev/null 2>&1; then
  echo "== AddressSanitizer reports:" >&2
  cat "$REPORTS"/asan.* >&2
  status=1
fi
[ $status = 0 ] && echo "== sanitize: no AddressSanitizer report, all tests passed" || echo "== sanitize: FAILED ($status)"
exit $status
