#!/usr/bin/env bash
# Mutation testing of wpk's core: how many deliberate small bugs does the suite catch?
#
#   tests/mutation/run.sh                      # every module in the table below
#   tests/mutation/run.sh hostpolicy secrets   # some of them, by short name
#   KEEP=1 tests/mutation/run.sh state         # reuse the module's last results: retest only
#                                              # survivors and new mutants (after adding tests)
#   TESTS='tests/test_x.py -k y' tests/mutation/run.sh state   # another test selection, this run
#   LINES=480-804 tests/mutation/run.sh semantics               # mutate only these lines, this run
#
# How: the working tree is copied (git-tracked and untracked files, not .git or .venv) to a
# scratch folder (default /tmp/wpk-mutation, or $WPK_MUTATION_DIR), installed editable into a
# throwaway venv there together with mutmut 2.5.1, and mutmut mutates each module *in place in
# that copy* and runs a targeted test selection per mutant (pytest -x, through a fork server so
# a mutant costs about a second). The project's own tree is never edited, so other work can go
# on meanwhile.
# mutmut 2.x (not 3.x) because 3.x runs tests from a `mutants/` copy of the sources, which the
# setuptools package-dir mapping (engine/ -> wpk.engine) does not find; 2.x edits files in place.
#
# Output: per module, killed / survived / timeout / suspicious and the score, in
# $DIR/report.txt, and the surviving mutants as diffs in $DIR/survivors-<module>.txt.
# Not part of .ci/run: it takes minutes per module. Results and their date: docs/testing.md.
set -euo pipefail
{ # the whole script is one block, read before it runs: editing this file mid-run is safe


ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${WPK_MUTATION_DIR:-/tmp/wpk-mutation}"
SRC="$DIR/src"
VENV="$DIR/venv"
PYTHON="${PYTHON:-python3}"

# short name | module | test selection (files, or files plus -k) | optional line range to mutate
MODULES=(
  "hostpolicy|adapters/guards/hostpolicy.py|tests/test_hostpolicy_tables.py tests/test_hostpolicy.py"
  "state|engine/state.py|tests/test_state_tables.py tests/test_semantics_tables.py tests/test_runner.py"
  "conductor|engine/conductor.py|tests/test_conductor_tables.py tests/test_semantics_tables.py tests/test_runner.py"
  "secrets|engine/secrets.py|tests/test_masking_tables.py tests/test_mut_secrets.py tests/test_hardening_secrets.py"
  "model|engine/model.py|tests/test_model_tables.py tests/test_semantics_tables.py tests/test_runner.py"
  "semantics|engine/semantics.py|tests/test_validation_edges.py tests/test_validate_rules.py tests/test_mut_semantics.py"
  # without the three hypothesis properties: 13 of the file's 17 s, and random from run to run;
  # the mutation tables first, so a mutant they catch stops before test_expressions is run
  "expressions|engine/expressions.py|tests/test_mut_expressions.py tests/test_expressions.py -k 'not arbitrary_text and not compiled_templates_raises and not just_under_the_caps'"
  # the process-kill code only: subreaper, group scan, reaping, marks and sweeps, TERM-then-KILL
  # (from become_subreaper to the end of _Group.end)
  "process|adapters/shell/process.py|tests/test_mut_process.py tests/test_shell_adapter.py tests/test_hardening_process.py -k '(mut_process or group or kill or cancel or reaped or without_proc or normal_exit or leaves or many_steps or sigterm or setsid or clears or spares) and not killed_agent'|238-557"
)

select_modules() {
  if [ "$#" -eq 0 ]; then
    printf '%s\n' "${MODULES[@]}"
    return
  fi
  for want in "$@"; do
    local found=""
    for row in "${MODULES[@]}"; do
      if [ "${row%%|*}" = "$want" ]; then
        printf '%s\n' "$row"
        found=1
      fi
    done
    if [ -z "$found" ]; then
      echo "unknown module '$want' (known: $(printf '%s ' "${MODULES[@]%%|*}"))" >&2
      exit 2
    fi
  done
}

ROWS="$(select_modules "$@")"

mkdir -p "$DIR"
copy_tree() {  # the tree as it is now: tests added while a long run goes on count for later modules
  rm -rf "$SRC"
  mkdir -p "$SRC"
  (cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$SRC")
}
echo "== copying $ROOT to $SRC"
copy_tree

if [ ! -x "$VENV/bin/mutmut" ]; then
  echo "== creating the throwaway venv $VENV (mutmut 2.5.1 + wpk[test])"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q "mutmut[patch]==2.5.1"
fi
"$VENV/bin/pip" install -q -e "$SRC[test]" 2>&1 | grep -v "WARNING: Location" || true

# One fork server for the whole run (tests/mutation/zygote.py): pytest and the heavy libraries
# are imported once; each mutant's tests run in a fresh fork that imports wpk from the mutated
# files. That makes a mutant cost about a second instead of ten on a busy 2-core machine.
SOCK="$DIR/zygote.sock"
rm -f "$SOCK"
(cd "$SRC" && exec "$VENV/bin/python" tests/mutation/zygote.py serve "$SOCK") &
ZYGOTE=$!
trap 'kill "$ZYGOTE" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -S "$SOCK" ] && break; sleep 0.2; done

REPORT="$DIR/report.txt"
echo "mutation run $(date -u +%Y-%m-%dT%H:%MZ) on $(cd "$ROOT" && git rev-parse --short HEAD)" >>"$REPORT"
while IFS='|' read -r name module tests lines; do
  [ -n "$name" ] || continue
  tests="${TESTS:-$tests}"
  echo "== $name: mutating $module against: $tests"
  lines="${LINES:-${lines:-}}"
  copy_tree
  cd "$SRC"
  cache="$DIR/cache-$name.sqlite"  # mutmut's results for this module, kept for KEEP=1
  if [ -n "${KEEP:-}" ] && [ -f "$cache" ]; then
    # mutmut keeps a killed mutant killed and retests the others (the tests have changed)
    cp "$cache" .mutmut-cache
  fi
  start=$(date +%s)
  # mutmut splits the runner with shlex, so a quoted -k expression in the selection works
  runner="$VENV/bin/python -I -S $SRC/tests/mutation/zygote.py client $SOCK -x -q -p no:cacheprovider $tests"
  only=()
  if [ -n "${lines:-}" ]; then  # a patch that "adds" just these lines: mutmut mutates only them
    first="${lines%-*}"
    last="${lines#*-}"
    sed "${first},${last}d" "$module" >"$DIR/without.py"
    diff -u --label "$module" --label "$module" "$DIR/without.py" "$module" >"$DIR/only-$name.patch" || true
    only=(--use-patch-file "$DIR/only-$name.patch")
  fi
  "$VENV/bin/mutmut" run --paths-to-mutate "$module" --runner "$runner" --tests-dir tests \
    --no-progress --simple-output "${only[@]}" >"$DIR/mutmut-$name.log" 2>&1 || true
  took=$(( $(date +%s) - start ))
  "$VENV/bin/python" - "$name" "$module" "$took" "$REPORT" <<'PY'
import sqlite3, sys
name, module, took, report = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
db = sqlite3.connect(".mutmut-cache")
rows = db.execute(
    "select m.status from Mutant m join Line l on m.line = l.id join SourceFile f on l.sourcefile = f.id"
    " where f.filename = ?", (module,)
).fetchall()
counts: dict[str, int] = {}
for (status,) in rows:
    counts[status] = counts.get(status, 0) + 1
killed = counts.get("ok_killed", 0)
survived = counts.get("bad_survived", 0)
timeout = counts.get("bad_timeout", 0)  # a mutant that hangs the tests is caught too
suspicious = counts.get("ok_suspicious", 0)  # slower but killed
untested = counts.get("untested", 0)
total = killed + survived + timeout + suspicious
score = 100.0 * (killed + timeout + suspicious) / total if total else 0.0
line = (f"{name:12} {module:34} mutants {total:4}  killed {killed:4}  timeout {timeout:3}  "
        f"suspicious {suspicious:3}  survived {survived:3}  untested {untested:3}  "
        f"score {score:5.1f}%  ({took} s)")
print(line)
with open(report, "a") as f:
    f.write(line + "\n")
PY
  cp .mutmut-cache "$cache"  # first: the diffs below take a while, and a run may be stopped
  "$VENV/bin/mutmut" show "$module" >"$DIR/survivors-$name.txt" 2>&1 || true
  "$VENV/bin/python" - "$module" >"$DIR/survivors-$name.diff" <<'PY' || true
import sqlite3, subprocess, sys  # every survivor as a diff, to read them all at once
module = sys.argv[1]
db = sqlite3.connect(".mutmut-cache")
ids = [r[0] for r in db.execute(
    "select m.id from Mutant m join Line l on m.line = l.id join SourceFile f on l.sourcefile = f.id"
    " where f.filename = ? and m.status = 'bad_survived' order by l.line_number", (module,))]
for i in ids:
    out = subprocess.run([sys.executable, "-m", "mutmut", "show", str(i)], capture_output=True, text=True)
    print(f"### mutant {i}\n{out.stdout}")
PY
done <<<"$ROWS"

echo "== report: $REPORT"
cat "$REPORT"
exit
}
