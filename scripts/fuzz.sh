#!/usr/bin/env bash
# Fuzz a target under fuzz/fuzz_targets:
#   snapshot  snapshot/config loading, validation, compilation and evaluation (the default);
#   path      the request-target normaliser and host check (rampart_model::paths);
#   wire      what gateways send the control plane (reports, samples, ACKs) and rollout plans,
#             with every sample replayed and compared as the impact test does.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET]   (default 300 s, snapshot; the build comes first
# and is not counted)
#
# Runs on stable Rust: cargo-fuzz's `-s none` builds with coverage instrumentation but no
# sanitizer, which needs no nightly. The writable corpus is fuzz/corpus/TARGET (git-ignored);
# the checked-in seeds in fuzz/seeds/TARGET are read but never written. Exits non-zero if the
# fuzzer finds a crash, and prints where the reproducing input was saved.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-300}"
target="${2:-snapshot}"
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
dict=()
if [[ -f "fuzz/$target.dict" ]]; then
    dict=(-dict="fuzz/$target.dict")
fi
cargo fuzz run -s none "$target" "$corpus" "$seeds" -- \
    -max_total_time="$seconds" \
    "${dict[@]}" \
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
