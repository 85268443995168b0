# tests/clilib.sh: what the end-to-end tests of the assay binary
# (tests/test_cli.sh, tests/test_cli2.sh) begin with: the binary, a work
# directory removed at exit, testlib.sh's run/ok/bad, check, the small
# datasets both halves use, and loopback port helpers. Sourced, not run.
set -u
bin=${ASSAY_BIN:?}
src=${ASSAY_TEST_SRCDIR:?}
build=${ASSAY_TEST_BUILDDIR:?}
fx=$build/fixtures
work=$(mktemp -d "${TMPDIR:-/tmp}/assay-cli.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

. "$src/testlib.sh"

# check NAME PYTHON: a Python expression over r (records) and s (summary).
check() {
  if python3 - "$3" "$4" >pyout 2>&1 <<EOF
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
s = json.load(open(sys.argv[2])) if sys.argv[2] != "-" else None
assert $2, (r, s)
EOF
  then ok "$1"; else bad "$1"; sed 's/^/     | /' pyout | tail -n 3; fi
}

cat >qa.jsonl <<'EOF'
{"id": "q1", "input": "Paris", "reference": "paris"}
{"id": 7, "input": "maple", "reference": "apple"}
{"input": "Lyon", "reference": "Lyon"}
EOF


# A dataset with a good line and a line that is not JSON.
printf '{"input": "x"}\nnot json\n' >partial.jsonl

# free_port: a loopback port nothing listens on; wait_port PORT: until a
# server accepts there (5 s at most).
free_port() {
  python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
}
wait_port() {
  i=0
  while ! python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null && [ $i -lt 50 ]; do
    sleep 0.1; i=$((i + 1))
  done
}
