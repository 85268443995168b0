# Shared helpers of the end-to-end test scripts, sourced after they set
# $bin (the assay binary). Each check prints "ok" or "FAIL" with its name;
# a script ends with `finish`, which prints the "N passed, M failed" line
# and returns non-zero when anything failed.
passed=0
failed=0

ok() { passed=$((passed + 1)); printf 'ok   %s\n' "$1"; }

# bad NAME: a failed check, with the start of the last command's stderr.
bad() {
  failed=$((failed + 1))
  printf 'FAIL %s\n' "$1"
  [ -f err ] && sed 's/^/     | /' err | head -n 12
  return 0
}

# run_assay NAME EXPECTED_STATUS ARGS...: runs the binary with no input,
# keeping its stdout in ./out and stderr in ./err, and checks its status.
run_assay() {
  name=$1 want=$2
  shift 2
  "$bin" "$@" >out 2>err </dev/null
  got=$?
  if [ "$got" -eq "$want" ]; then ok "$name (exit $got)"; else bad "$name: exit $got, expected $want"; fi
}

run() { run_assay "$@"; }

# expect_err NAME TEXT: the last command's stderr contains TEXT.
expect_err() {
  if grep -qF -- "$2" err; then ok "$1"; else bad "$1: stderr lacks '$2'"; fi
}

# same_records A B: two records files hold the same records in the same
# order, ignoring the timings (task_ms, metrics_ms) that differ from run to
# run. What differs first is left in ./pyout.
same_records() {
  python3 - "$1" "$2" >pyout 2>&1 <<'EOF'
import json, sys
def load(p):
    out = []
    for l in open(p):
        d = json.loads(l)
        d.pop("task_ms"); d.pop("metrics_ms")
        out.append(d)
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
assert len(a) == len(b), (len(a), len(b))
for x, y in zip(a, b):
    assert x == y, (x, y)
EOF
}

finish() {
  printf '\n%d passed, %d failed\n' "$passed" "$failed"
  [ "$failed" -eq 0 ]
}
