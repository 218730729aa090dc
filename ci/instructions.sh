#!/usr/bin/env bash
# Instruction counts of the hot paths under callgrind (gungraun, in its own
# workspace benches/instructions/), compared with the recorded counts in
# benches/instructions/recorded.tsv. Counts do not move with the neighbours.
#
#   ci/instructions.sh            run; print each count, its extra over the
#                                 floor (round trips) and the change against
#                                 the record
#   ci/instructions.sh --record   also overwrite the record
#
# Installs valgrind (Debian) and gungraun-runner (crates.io, the version the
# bench crate pins) when missing, or prints SKIP: with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.20.0
record=benches/instructions/recorded.tsv

if ! command -v valgrind >/dev/null; then
  if ! { apt-get update -qq && apt-get install -y -qq valgrind; } >/dev/null 2>&1; then
    echo "SKIP: instruction counts: valgrind is not installed and apt-get could not install it"
    exit 0
  fi
fi
if ! gungraun-runner --version 2>/dev/null | grep -q "$version"; then
  if ! cargo install --quiet gungraun-runner --version "$version" --locked; then
    echo "SKIP: instruction counts: could not install gungraun-runner $version (offline?)"
    exit 0
  fi
fi

mkdir -p target
log=target/instructions.log
new=target/instructions.tsv
(cd benches/instructions && cargo bench --bench hot_paths) >"$log" 2>&1 || {
  echo "instruction benchmarks failed; last lines:"; tail -n 40 "$log"; exit 1; }

# "hot_paths::hot_paths::<path> <id>:(...)" then "  Instructions:  N|..."
awk '/^hot_paths::hot_paths::/ { split($1, p, "::"); path = p[3]; id = $2; sub(/:.*/, "", id) }
     /^  Instructions:/ { split($2, c, "|"); printf "%s\t%s\t%s\n", path, id, c[1] }' "$log" >"$new"
[ -s "$new" ] || { echo "no counts parsed from $log"; exit 1; }

echo "instructions per operation (callgrind; $(valgrind --version), $(rustc --version))"
awk -F'\t' -v rec="$record" '
  BEGIN { while ((getline l < rec) > 0) { split(l, f, "\t"); if (f[1] != "path") old[f[1] "/" f[2]] = f[3] } }
  { key = $1 "/" $2; n[NR] = key; v[key] = $3; p[NR] = $1; if ($2 == "floor") floor[$1] = $3 }
  END {
    printf "%-22s %-16s %8s %10s %16s\n", "hot path", "variant", "instr", "over floor", "vs recorded"
    for (i = 1; i <= NR; i++) {
      key = n[i]; split(key, k, "/")
      over = (p[i] in floor) ? sprintf("%+d", v[key] - floor[p[i]]) : ""
      if (key in old) ch = (v[key] == old[key]) ? "=" : sprintf("%d -> %d (%+.1f%%)", old[key], v[key], 100 * (v[key] - old[key]) / old[key])
      else ch = "new"
      printf "%-22s %-16s %8d %10s %16s\n", k[1], k[2], v[key], over, ch
    }
  }' "$new"

if [ "${1:-}" = --record ]; then
  { printf 'path\tvariant\tinstructions\n'; cat "$new"; } >"$record"
  echo "recorded: $record"
fi
