#!/usr/bin/env bash
# Runs tutti's cargo-fuzz targets (every parser that reads the wire or a user)
# and prints one line per target: inputs run, seconds, result.
#
#   scripts/fuzz.sh --quick               # 60 s per target (what CI may call)
#   scripts/fuzz.sh --seconds 1800        # a long run per target
#   scripts/fuzz.sh --seconds 300 srtp    # some targets only
#   scripts/fuzz.sh --seconds 1800 --runs 10000000   # whichever comes first
#   scripts/fuzz.sh --list                # the targets
#   scripts/fuzz.sh --minimize            # refresh the committed seed corpora
#   scripts/fuzz.sh --quick --skip-missing  # exit 0, saying so, without nightly/cargo-fuzz
#
# Each target keeps a working corpus in <crate>/fuzz/corpus/<target> (not
# committed) and starts from the small, minimized seeds committed in
# <crate>/fuzz/seeds/<target>. A crash leaves its input in
# <crate>/fuzz/artifacts/<target>/ and makes the script exit 1; turn the input
# into a regression test (or a seed) before fixing it.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=60
runs_limit=-1
minimize=0
list=0
skip_missing=0
wanted=()
while (($#)); do
    case "$1" in
        --quick) seconds=60 ;;
        --seconds) seconds=${2:?--seconds needs a number}; shift ;;
        --runs) runs_limit=${2:?--runs needs a number}; shift ;;
        --minimize) minimize=1 ;;
        --list) list=1 ;;
        --skip-missing) skip_missing=1 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
        *) wanted+=("$1") ;;
    esac
    shift
done

# crate:target for every [[bin]] of every fuzz crate.
targets=()
for manifest in "$root"/*/fuzz/Cargo.toml; do
    crate=$(basename "$(dirname "$(dirname "$manifest")")")
    while read -r name; do
        targets+=("$crate:$name")
    done < <(awk '/^\[\[bin\]\]/{bin=1} bin && /^name *=/{gsub(/[" ]/,"",$0); sub(/name=/,"",$0); print; bin=0}' "$manifest")
done
if ((list)); then
    printf '%s\n' "${targets[@]}"
    exit 0
fi

missing=""
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    missing="no nightly toolchain (rustup toolchain install nightly)"
elif ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    missing="no cargo-fuzz (cargo install cargo-fuzz --locked)"
fi
if [[ -n $missing ]]; then
    if ((skip_missing)); then
        echo "fuzz: skipped: $missing"
        exit 0
    fi
    echo "fuzz: $missing" >&2
    exit 2
fi

failed=0
printf '%-26s %14s %8s  %s\n' target inputs seconds result
for entry in "${targets[@]}"; do
    crate=${entry%%:*}
    target=${entry#*:}
    if ((${#wanted[@]})) && [[ ! " ${wanted[*]} " == *" $target "* ]]; then
        continue
    fi
    dir="$root/$crate/fuzz"
    corpus="$dir/corpus/$target"
    seeds="$dir/seeds/$target"
    mkdir -p "$corpus" "$seeds"
    if ((minimize)); then
        # Everything found so far, minimized into a fresh seed directory.
        fresh=$(mktemp -d)
        (cd "$dir" && cargo +nightly fuzz run "$target" "$fresh" "$corpus" "$seeds" -- -merge=1 >/dev/null 2>&1) || true
        rm -rf "$seeds" && mv "$fresh" "$seeds"
        echo "$entry: $(find "$seeds" -type f | wc -l) seeds, $(du -sh "$seeds" | cut -f1)"
        continue
    fi
    log=$(mktemp)
    # The working corpus first: new inputs are written there, never into the seeds.
    if (cd "$dir" && cargo +nightly fuzz run "$target" "$corpus" "$seeds" -- \
        -max_total_time="$seconds" -runs="$runs_limit" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1) >"$log" 2>&1; then
        result=clean
    else
        result="FAILED (see $dir/artifacts/$target/)"
        failed=1
        tail -30 "$log" >&2
    fi
    runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 | awk '{print $2, $5}' || true)
    read -r inputs took <<<"${runs:-? ?}"
    printf '%-26s %14s %8s  %s\n' "$entry" "$inputs" "$took" "$result"
    rm -f "$log"
done
exit $failed
