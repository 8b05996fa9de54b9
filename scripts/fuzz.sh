#!/usr/bin/env bash
# Fuzz snapshot/config loading, validation, compilation and evaluation (fuzz/fuzz_targets/snapshot.rs).
#
# Usage: scripts/fuzz.sh [SECONDS]   (default 300; the build comes first and is not counted)
#
# Runs on stable Rust: cargo-fuzz's `-s none` builds with coverage instrumentation but no
# sanitizer, which needs no nightly. The writable corpus is fuzz/corpus/snapshot (git-ignored);
# the checked-in seeds in fuzz/seeds/snapshot are read but never written. Exits non-zero if the
# fuzzer finds a crash, and prints where the reproducing input was saved.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-300}"
target=snapshot
corpus="fuzz/corpus/$target"
seeds="fuzz/seeds/$target"
artifacts="fuzz/artifacts/$target"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

mkdir -p "$corpus" "$artifacts"
cargo fuzz build -s none "$target"

marker="$(mktemp)"
trap 'rm -f "$marker"' EXIT

status=0
cargo fuzz run -s none "$target" "$corpus" "$seeds" -- \
    -max_total_time="$seconds" \
    -dict=fuzz/snapshot.dict \
    -print_final_stats=1 || status=$?

if [[ $status -ne 0 ]]; then
    echo >&2
    echo "fuzz.sh: the fuzzer failed (exit $status)." >&2
    found=0
    while IFS= read -r -d '' f; do
        found=1
        echo "fuzz.sh: artifact: $f" >&2
        echo "fuzz.sh:   reproduce: cargo fuzz run -s none $target $f" >&2
        echo "fuzz.sh:   minimize:  cargo fuzz tmin -s none $target $f" >&2
    done < <(find "$artifacts" -type f -newer "$marker" -print0)
    if [[ $found -eq 0 ]]; then
        echo "fuzz.sh: no new artifact under $artifacts (a build or setup error?)" >&2
    fi
    exit "$status"
fi
echo "fuzz.sh: no crash in ${seconds}s; corpus: $(find "$corpus" -type f | wc -l) inputs in $corpus" >&2
