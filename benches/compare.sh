#!/usr/bin/env bash
# Criterion baselines for the kernel benches: save one, or compare against it.
#
#   benches/compare.sh BASE [FILTER...]         compare the current tree with baseline BASE
#                                               (saves BASE first if it does not exist yet)
#   benches/compare.sh --save BASE [FILTER...]  (re)save baseline BASE from the current tree
#
# Typical use: `benches/compare.sh --save main` on the old commit, then
# `benches/compare.sh main` on the new one. Regressions are the benchmarks criterion judges
# slower beyond its noise threshold (NOISE, default 5%) with p < 0.05; they are listed at the
# end and the script exits 1 if there is any. Environment: BITNET_BENCH_FULL=1 for the whole
# matrix, BITNET_ISA=scalar|avx2|avx512 for one ISA (see benches/src/lib.rs).
# On a shared machine, compare runs made under similar load (`uptime` is printed).
set -euo pipefail

save=0
if [[ "${1:-}" == "--save" ]]; then
    save=1
    shift
fi
base="${1:?usage: benches/compare.sh [--save] BASE [FILTER...]}"
shift
noise="${NOISE:-0.05}"
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
cd "$root"

uptime
if [[ $save == 1 ]] || ! find "$target/criterion" -type d -name "$base" -print -quit 2>/dev/null | grep -q .; then
    echo "compare.sh: saving baseline '$base'"
    cargo bench -p bitnet-benches --bench kernels -- --save-baseline "$base" "$@"
    exit 0
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo bench -p bitnet-benches --bench kernels -- --baseline "$base" --noise-threshold "$noise" "$@" \
    2>&1 | tee "$log"

# A benchmark's block starts with its id at column 0 (alone on a line when it is long);
# criterion prints "Performance has regressed." inside the block of a regression.
awk '
    /^[A-Za-z_][^ ]*\// { id = $1 }
    /Performance has regressed/ { print "REGRESSED  " id; n++ }
    /Performance has improved/ { print "improved   " id }
    END { if (n) { printf "compare.sh: %d regression(s) beyond %s noise vs %s\n", n, noise, base; exit 1 }
          else { printf "compare.sh: no regression beyond noise vs %s\n", base } }
' noise="$noise" base="$base" "$log"
