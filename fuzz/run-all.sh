#!/usr/bin/env bash
# Runs every cargo-fuzz target (or the ones named) for SECONDS each, one after the other,
# one libFuzzer process at a time (never in parallel: the machine is shared), and reports
# per target: executions, execs/s, corpus growth, and any crash/timeout/OOM artifact.
#
#   fuzz/run-all.sh SECONDS [TARGET...]
#
# Toolchain: nightly with AddressSanitizer when `cargo +nightly` exists, else stable with
# `-s none` (override with FUZZ_SANITIZER=none|address). New inputs go to a scratch corpus
# (fuzz/target/run-corpus/<target>); the committed corpus (fuzz/corpus/<target>) is only
# read, unless FUZZ_MERGE=1, which merges the inputs that add coverage into it afterwards.
# Artifacts land in fuzz/artifacts/<target>/. FUZZ_TIMEOUT (s, default 10) makes a slow
# input a finding. Exit status: 0 if no target crashed, 1 otherwise.
set -uo pipefail

usage() {
    echo "usage: $0 SECONDS [TARGET...]" >&2
    exit 2
}
[[ $# -ge 1 && $1 =~ ^[0-9]+$ ]] || usage
secs=$1
shift
cd "$(dirname "$0")"

if [[ -n ${FUZZ_SANITIZER:-} ]]; then
    san=$FUZZ_SANITIZER
elif cargo +nightly --version >/dev/null 2>&1; then
    san=address
else
    san=none
fi
if [[ $san == none ]]; then
    fuzz=(cargo fuzz)
    build_opts=(-s none)
else
    fuzz=(cargo +nightly fuzz)
    build_opts=(-s "$san" --target-dir target/"$san")
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <("${fuzz[@]}" list)
fi
[[ ${#targets[@]} -gt 0 ]] || {
    echo "no fuzz targets found" >&2
    exit 2
}

echo "== building ${targets[*]} (${fuzz[*]}, sanitizer: $san)"
"${fuzz[@]}" build "${build_opts[@]}" || exit 1

logs=target/run-logs
mkdir -p "$logs"
summary=()
failed=0
for t in "${targets[@]}"; do
    scratch=target/run-corpus/$t
    mkdir -p "$scratch" "corpus/$t" "artifacts/$t"
    stamp=$(mktemp)
    log=$logs/$t.log
    echo "== $t: ${secs}s ($log)"
    start=$(date +%s)
    "${fuzz[@]}" run "${build_opts[@]}" "$t" "$scratch" "corpus/$t" -- \
        -max_total_time="$secs" -timeout="${FUZZ_TIMEOUT:-10}" -print_final_stats=1 \
        >"$log" 2>&1
    status=$?
    took=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [^ ]+' || true)
    mapfile -t found < <(find "artifacts/$t" -type f -newer "$stamp" 2>/dev/null)
    rm -f "$stamp"
    line="$t: ${execs:-?} execs in ${took}s (${rate:-?} exec/s, peak RSS ${rss:-?} MB; ${cov:-no stats})"
    if [[ $status -ne 0 || ${#found[@]} -gt 0 ]]; then
        failed=1
        line+=" -- FAILED (exit $status): ${found[*]:-see log}"
        grep -E 'panicked at|ERROR: (libFuzzer|AddressSanitizer)|SUMMARY' "$log" | head -5
    fi
    echo "$line"
    summary+=("$line")
    if [[ ${FUZZ_MERGE:-0} == 1 ]]; then
        "${fuzz[@]}" run "${build_opts[@]}" "$t" "corpus/$t" "$scratch" -- -merge=1 \
            >"$logs/$t.merge.log" 2>&1 || echo "   merge failed: $logs/$t.merge.log"
    fi
done

echo
echo "== summary (sanitizer: $san, ${secs}s per target)"
printf '  %s\n' "${summary[@]}"
exit $failed
