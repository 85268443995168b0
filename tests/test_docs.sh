#!/bin/sh
# test_docs.sh: the user documentation is true. It builds every example
# plugin of docs/examples/ with the very cc and libtool lines the guides
# print, loads each with `assay plugins`, runs each through `assay run` and
# checks the records; it checks that the guides include each example
# verbatim, that the README's record line is what the demo produces, and
# that the man page documents every option `assay run --help` lists.
#
# Run by `make check` (ASSAY_BIN, ASSAY_TEST_SRCDIR, ASSAY_TEST_BUILDDIR come
# from the Makefile), or by hand:
#   ASSAY_BIN=/path/to/build/assay tests/test_docs.sh
# ASSAY_TEST_WRAP, when set, prefixes every assay command (for example
# "valgrind -q --error-exitcode=99 --leak-check=full").
# Exit status: 0 pass, 77 skip (no C compiler), anything else a failure.
set -u

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "${ASSAY_TEST_SRCDIR:-$here}/.." && pwd)
builddir=$(cd "${ASSAY_TEST_BUILDDIR:-$here}/.." && pwd)
: "${ASSAY_BIN:?set ASSAY_BIN to the assay binary}"
WRAP=${ASSAY_TEST_WRAP:-}

if ! command -v cc >/dev/null 2>&1; then
  echo "SKIP: no C compiler (cc) to build the example plugins"
  exit 77
fi
for tool in python3 pkg-config; do
  if ! command -v $tool >/dev/null 2>&1; then
    echo "FAIL: $tool is needed by this test and is missing"
    exit 1
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/assay-docs.XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
pass() {
  echo "ok: $*"
}

# assay ARGS...: runs the binary (wrapped), stdout and stderr into
# $work/out and $work/err; sets $status.
assay() {
  # shellcheck disable=SC2086 # WRAP is a command line, split on purpose
  $WRAP "$ASSAY_BIN" "$@" >"$work/out" 2>"$work/err"
  status=$?
}

# expect_status N WHAT: checks the status of the last assay command.
expect_status() {
  if [ "$status" -ne "$1" ]; then
    fail "$2: exit status $status, expected $1; stderr:"
    sed 's/^/  | /' "$work/err"
    return 1
  fi
  return 0
}

# check_records FILE WHAT PYTHON: runs PYTHON with `recs`, the list of
# records of FILE (one JSON object per line), and `by_id`, them by id; the
# code asserts what the docs promise.
check_records() {
  if python3 - "$1" "$3" <<'EOF'; then
import json, math, sys
path, code = sys.argv[1], sys.argv[2]
with open(path) as f:
    recs = [json.loads(line) for line in f]
by_id = {r["id"]: r for r in recs}
def score(rid, name):
    return by_id[rid]["scores"][name]
def close(a, b):
    return a is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
try:
    exec(code)
except AssertionError as e:
    print("  assertion failed:", e)
    for r in recs:
        print("  |", json.dumps(r))
    sys.exit(1)
EOF
    pass "$2"
  else
    fail "$2"
  fi
}

cd "$work" || exit 1
tg="$srcdir/docs/writing-task-plugins.md"
mg="$srcdir/docs/writing-metric-plugins.md"
examples=
for f in "$srcdir"/docs/examples/*.c; do
  [ -f "$f" ] && examples="$examples $(basename "$f" .c)"
done
if [ -z "$examples" ]; then
  fail "no example plugins in docs/examples"
  exit 1
fi

# 1. Every example is included verbatim in a guide.
for ex in $examples; do
  if python3 -c '
import sys
src = open(sys.argv[1]).read()
sys.exit(0 if any(src in open(g).read() for g in sys.argv[2:]) else 1)
' "$srcdir/docs/examples/$ex.c" "$tg" "$mg"; then
    pass "docs/examples/$ex.c appears verbatim in a guide"
  else
    fail "docs/examples/$ex.c differs from its copy in the guides (or is missing from them)"
  fi
done

# 2. Build each example with the guides' one-line cc command.
export SDK="$srcdir/sdk/include"
cp "$srcdir"/docs/examples/*.c "$work/"
for ex in $examples; do
  line=$(grep -h "^cc .* -o $ex\.so $ex\.c " "$tg" "$mg" | head -n 1)
  if [ -z "$line" ]; then
    fail "no 'cc ... -o $ex.so $ex.c' line in the guides"
    continue
  fi
  if sh -c "$line" >"$work/cc.log" 2>&1 && [ -f "$ex.so" ]; then
    pass "built $ex.so with: $line"
  else
    fail "the guide's build line failed: $line"
    sed 's/^/  | /' "$work/cc.log"
  fi
done

# 3. Build each example with the guides' libtool lines, using the libtool
# script configure wrote into the build directory.
mkdir -p "$work/lt/bin"
if [ -x "$builddir/libtool" ]; then
  ln -s "$builddir/libtool" "$work/lt/bin/libtool"
  cp "$srcdir"/docs/examples/*.c "$work/lt/"
  for ex in $examples; do
    lines=$(grep -h "^libtool --mode=.* $ex\.l\{0,1\}[co]\( \|\$\)" "$tg" "$mg")
    if [ "$(printf '%s\n' "$lines" | grep -c .)" -ne 2 ]; then
      fail "expected a libtool compile and a link line for $ex in the guides"
      continue
    fi
    if (cd "$work/lt" && PATH="$work/lt/bin:$PATH" && export PATH &&
      printf '%s\n' "$lines" | while IFS= read -r l; do
        sh -c "$l" || exit 1
      done) >"$work/lt.log" 2>&1 && [ -f "$work/lt/$ex.la" ]; then
      pass "built $ex.la with the guide's libtool lines"
    else
      fail "the guide's libtool lines failed for $ex"
      sed 's/^/  | /' "$work/lt.log"
    fi
  done
else
  fail "no libtool script in $builddir (run configure there first)"
fi

# 4. `assay plugins FILE` loads each one and describes its component as
# the guides say: its kind and whether it is sync or async.
kind_of() {
  case $1 in
  shout) echo task sync ;;
  slow_echo) echo task async ;;
  word_overlap) echo metric sync ;;
  token_f1) echo metric async ;;
  *) echo unknown ;;
  esac
}
for ex in $examples; do
  for file in "./$ex.so" "./lt/$ex.la"; do
    [ -f "$file" ] || continue
    assay plugins "$file"
    expect_status 0 "assay plugins $file" || continue
    assay plugins --json "$file"
    expect_status 0 "assay plugins --json $file" || continue
    # shellcheck disable=SC2046 # kind_of prints two words, split on purpose
    if python3 -c '
import json, sys
name, kind, mode = sys.argv[1], sys.argv[2], sys.argv[3]
[p] = json.load(open(sys.argv[4]))
[c] = p["components"]
assert p["plugin"] == name and c["name"] == name, (p["plugin"], c["name"])
assert c["kind"] == kind and c["modes"] == [mode], (c["kind"], c["modes"])
' "$ex" $(kind_of "$ex") "$work/out"; then
      pass "assay plugins $file: $(kind_of "$ex")"
    else
      fail "assay plugins --json $file does not describe $ex as $(kind_of "$ex")"
      sed 's/^/  | /' "$work/out"
    fi
  done
done

# 5. Runs, with the values the guides show.
cat >items.jsonl <<'EOF'
{"id":"a","input":"hello world","reference":"HELLO WORLD"}
{"id":"b","input":"the cat sat on a Mat","reference":"a mat for the dog"}
EOF

# The sync task and both metrics, sync and async.
assay run --dataset items.jsonl --task ./shout.so \
  --metric equals --opt case_sensitive=true \
  --metric ./word_overlap.so --metric ./token_f1.so \
  --output shout.jsonl -q
if expect_status 0 "run shout + word_overlap + token_f1"; then
  check_records shout.jsonl "shout, word_overlap and token_f1 records" '
assert [r["id"] for r in recs] == ["a", "b"], "records in dataset order"
assert by_id["a"]["output"] == {"output": "HELLO WORLD"}, "shout output"
assert by_id["b"]["output"] == {"output": "THE CAT SAT ON A MAT"}, "shout output"
assert all(r["error"] is None for r in recs), "no task error"
assert score("a", "equals")["value"] == 1, "equals a"
assert score("b", "equals")["value"] == 0, "equals b"
assert score("a", "word_overlap")["value"] == 1, "word_overlap a"
assert close(score("b", "word_overlap")["value"], 0.6), "word_overlap b"
assert score("b", "word_overlap")["reason"] == "3 of 5 reference words found", "reason"
assert score("a", "token_f1")["value"] == 1, "token_f1 a"
assert close(score("b", "token_f1")["value"], 6 / 11), "token_f1 b"
'
fi

# The async task, built with libtool, loaded from its .la.
if [ -f lt/slow_echo.la ]; then
  assay run --dataset items.jsonl --task ./lt/slow_echo.la --opt ms=200 \
    --metric equals --output slow.jsonl -q
  if expect_status 0 "run slow_echo.la"; then
    check_records slow.jsonl "slow_echo records" '
assert [r["output"] for r in recs] == [{"output": "hello world"}, {"output": "the cat sat on a Mat"}], "slow_echo output"
assert [r["scores"]["equals"]["value"] for r in recs] == [1, 0], "equals"
# A generous lower bound: libuv timers count from the loop cached time.
assert all(r["attempts"] == 1 and r["task_ms"] >= 150 for r in recs), "one attempt that waited on the 200 ms timer"
'
  fi
fi

# Scoring mode with --map, as in the metric guide.
cat >answers.jsonl <<'EOF'
{"id":"c","output":"the cat sat on a Mat","expected":"a mat for the dog"}
EOF
assay run --dataset answers.jsonl --metric ./word_overlap.so \
  --map reference=expected --output answers-scored.jsonl -q
if expect_status 0 "scoring mode with --map"; then
  check_records answers-scored.jsonl "word_overlap in scoring mode with --map" '
assert score("c", "word_overlap") == {"value": 0.6, "reason": "3 of 5 reference words found", "error": None}, score("c", "word_overlap")
'
fi

# A bad item is a record with bad_input, and the run exits 1.
cat >bad.jsonl <<'EOF'
{"id":"ok","input":"hello","reference":"HELLO"}
{"id":"noinput","question":"hello"}
EOF
assay run --dataset bad.jsonl --task ./shout.so --metric equals \
  --output bad-out.jsonl -q
if expect_status 1 "a failed item makes exit status 1"; then
  check_records bad-out.jsonl "shout fails a bad item with bad_input" '
assert by_id["ok"]["output"] == {"output": "HELLO"} and score("ok", "equals")["value"] == 1, "good item"
e = by_id["noinput"]["error"]
assert e is not None and e["code"] == "bad_input", e
assert e["message"] == "item field '"'"'input'"'"' is missing or not a string", e
assert by_id["noinput"]["output"] is None, "no output"
assert not by_id["noinput"]["scores"], "metrics not run after a task failure"
'
fi

# A metric's failure is a failed score, not a failed record.
cat >num.jsonl <<'EOF'
{"id":"n","output":42,"reference":"42"}
EOF
assay run --dataset num.jsonl --metric ./token_f1.so --output num-out.jsonl -q
if expect_status 1 "a failed score makes exit status 1"; then
  check_records num-out.jsonl "token_f1 fails a non-string output as a score" '
s = score("n", "token_f1")
assert s["value"] is None and "must be strings" in s["error"], s
assert by_id["n"]["error"] is None, "the record itself did not fail"
'
fi

# A missing input key names the key.
assay run --dataset answers.jsonl --metric ./word_overlap.so \
  --output answers-nomap.jsonl -q
if expect_status 1 "a missing metric input makes exit status 1"; then
  check_records answers-nomap.jsonl "a missing metric input names the key" '
s = score("c", "word_overlap")
assert s["value"] is None and "reference" in s["error"] and "--map" in s["error"], s
'
fi

# init failure: exit 2, the plugin's message, no records.
assay run --dataset items.jsonl --task ./slow_echo.so --opt ms=-1 \
  --output init-fail.jsonl -q
if expect_status 2 "slow_echo rejects ms=-1 in init"; then
  if grep -q "option 'ms' must be >= 0" "$work/err" && [ ! -s init-fail.jsonl ]; then
    pass "init failure prints the plugin's message and writes no records"
  else
    fail "init failure: message or records wrong; stderr:"
    sed 's/^/  | /' "$work/err"
  fi
fi

# An unknown option is refused before any work.
assay run --dataset items.jsonl --task ./shout.so --opt colour=red \
  --output unknown-opt.jsonl -q
if expect_status 2 "an unknown option is a configuration error"; then
  if grep -q "colour" "$work/err"; then
    pass "an unknown option is refused by name"
  else
    fail "the unknown-option message does not name 'colour'"
  fi
fi

# The host's timeout abandons slow_echo's calls; their timers are still
# running when fini closes them.
assay run --dataset items.jsonl --task ./slow_echo.so --opt ms=2000 \
  --timeout 50 --retries 0 --output timeout.jsonl -q
if expect_status 1 "slow_echo past --timeout"; then
  check_records timeout.jsonl "abandoned async calls are timeout records" '
assert [r["error"]["code"] for r in recs] == ["timeout", "timeout"], [r["error"] for r in recs]
'
fi

# 6. The README's record line is what the demo produces (timings aside).
assay run --dataset "$srcdir/docs/examples/demo.jsonl" --task echo \
  --metric equals --metric levenshtein_ratio --output demo.jsonl
if expect_status 0 "the README demo"; then
  grep '^{"index":' "$srcdir/README.md" >readme-records.jsonl
  if [ ! -s readme-records.jsonl ]; then
    fail "README.md shows no record line"
  elif python3 - demo.jsonl readme-records.jsonl <<'EOF'; then
import json, sys
def strip(r):
    return {k: v for k, v in r.items() if k not in ("task_ms", "metrics_ms")}
got = {r["index"]: strip(r) for r in map(json.loads, open(sys.argv[1]))}
for line in open(sys.argv[2]):
    shown = strip(json.loads(line))
    if got.get(shown["index"]) != shown:
        print("  README shows:", json.dumps(shown))
        print("  demo writes: ", json.dumps(got.get(shown["index"])))
        sys.exit(1)
EOF
    pass "the README's record lines match the demo's records"
  else
    fail "the README's record line differs from the demo's"
  fi
  if grep -q "levenshtein_ratio" "$work/err"; then
    pass "the demo prints its summary table"
  else
    fail "the demo printed no summary table on stderr"
  fi
fi

# 7. The man page documents every option of `assay run --help` and
# `assay plugins --help`.
for cmd in run plugins; do
  assay "$cmd" --help
  if expect_status 0 "assay $cmd --help"; then
    missing=0
    # shellcheck disable=SC2013 # options are words
    for opt in $(cat "$work/out" "$work/err" | grep -o -- '--[a-z][a-z-]*' | sort -u); do
      roff=$(printf '%s' "$opt" | sed 's/-/\\\\-/g')
      if ! grep -q -- "$roff" "$srcdir/docs/assay.1"; then
        fail "docs/assay.1 does not document '$opt' of 'assay $cmd'"
        missing=1
      fi
    done
    [ "$missing" -eq 0 ] && pass "docs/assay.1 covers the options of 'assay $cmd --help'"
  fi
done

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all documentation checks passed"
exit 0
