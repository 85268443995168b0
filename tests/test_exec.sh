#!/bin/sh
# The exec task through the real binary: once mode (JSON and text output,
# exit status and signals with the stderr tail, timeouts killing the whole
# process group, the output cap, no shell unless asked, env and cwd) and
# persistent mode (workers started once, restarted after a crash, a bad
# reply or a timeout; error replies). Helper programs live in tests/exec/.
# Needs ASSAY_BIN and ASSAY_TEST_SRCDIR (set by make check) and python3.
set -u
bin=${ASSAY_BIN:?}
src=${ASSAY_TEST_SRCDIR:?}
build=${ASSAY_TEST_BUILDDIR:?}
ex=$src/exec
work=$(mktemp -d "${TMPDIR:-/tmp}/assay-exec.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

. "$src/testlib.sh"
# Every run here is `assay run`, and a plugin's fini must close every handle:
# the engine warns when uv_loop_close fails.
run() {
  name=$1 want=$2
  shift 2
  run_assay "$name" "$want" run "$@"
  if grep -q "left libuv handles open" err; then bad "$name: handles left open"; fi
}

# check NAME PYTHON FILE: a Python expression over r (the records of FILE).
check() {
  if python3 - "$3" >pyout 2>&1 <<EOF
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert $2, r
EOF
  then ok "$1"; else bad "$1"; sed 's/^/     | /' pyout | tail -n 3; fi
}

# alive PID: the process exists and is not a zombie.
alive() {
  kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

cat >qa.jsonl <<'EOF'
{"id": "a", "input": "paris", "reference": "PARIS"}
{"id": "b", "input": "rome; rm -rf / $(touch pwned) `touch pwned2`", "reference": "x"}
{"id": "c", "input": "ünïcode", "reference": "ÜNÏCODE"}
EOF

# ---- once mode ---------------------------------------------------------------
run "upper.sh as the task" 0 --dataset qa.jsonl --task exec \
  --opt "cmd=[\"$ex/upper.sh\"]" --metric equals -o up.jsonl -q
check "plain text output, scored" \
  "[x['output'] for x in r] == [{'output': 'PARIS'}, {'output': 'ROME; RM -RF / \$(TOUCH PWNED) \`TOUCH PWNED2\`'}, {'output': 'ÜNÏCODE'}] and r[0]['scores']['equals']['value'] == 1 and r[2]['scores']['equals']['value'] == 1" up.jsonl
[ ! -e pwned ] && [ ! -e pwned2 ] && ok "an item's shell syntax is data only" || bad "an item's shell syntax is data only"

cp "$ex/upper.sh" ./local-upper.sh
run "relative program path" 0 --dataset qa.jsonl --task exec \
  --opt 'cmd=["./local-upper.sh"]' --limit 1 -o rel.jsonl -q
check "relative path from the working directory" "r[0]['output'] == {'output': 'PARIS'}" rel.jsonl

run "cat passes JSON through" 0 --dataset qa.jsonl --task exec --opt 'cmd=["cat"]' -o cat.jsonl -q
check "a JSON object on stdout is the output as is" \
  "all(x['output'] == x['input'] for x in r) and r[1]['output']['input'].startswith('rome; rm')" cat.jsonl

printf '{"n": 41}\n' >n.jsonl
run "a JSON number" 0 --dataset n.jsonl --task exec \
  --opt 'cmd=["python3", "-c", "import json,sys; print(json.load(sys.stdin)[\"n\"] + 1)"]' -o num.jsonl -q
check "a JSON scalar is wrapped as output" "r[0]['output'] == {'output': 42}" num.jsonl

run "plain text" 0 --dataset n.jsonl --task exec --opt "cmd=[\"$ex/text.sh\"]" -o text.jsonl -q
check "text output trimmed" "r[0]['output'] == {'output': 'hello from text.sh'}" text.jsonl

run "input=field" 0 --dataset qa.jsonl --task exec --opt 'cmd=["tr", "a-z", "A-Z"]' \
  --opt input=field:input --limit 1 -o field.jsonl -q
check "a field's text on stdin" "r[0]['output'] == {'output': 'PARIS'}" field.jsonl
run "input=field missing" 1 --dataset qa.jsonl --task exec --opt 'cmd=["cat"]' \
  --opt input=field:nope --limit 1 -o nofield.jsonl -q
check "a missing field is bad input, with the fields there are" \
  "r[0]['error'] == {'code': 'bad_input', 'message': \"item has no field 'nope' (from --opt input=field:nope; it has: id, input, reference)\"}" nofield.jsonl

run "non-zero exit" 1 --dataset n.jsonl --task exec --opt "cmd=[\"$ex/fail.sh\"]" -o fail.jsonl -q
check "exit status and the stderr tail" \
  "r[0]['error']['code'] == 'error' and 'exit status 3' in r[0]['error']['message'] and \"fatal: model file 'weights.bin' is missing\" in r[0]['error']['message'] and 'noise line 0 ' not in r[0]['error']['message'] and len(r[0]['error']['message']) < 1400 and r[0]['attempts'] == 1" fail.jsonl

run "killed by a signal" 1 --dataset n.jsonl --task exec --opt "cmd=[\"$ex/signal.sh\"]" -o sig.jsonl -q
check "signal named with the stderr tail" \
  "'killed by signal 15 (SIGTERM)' in r[0]['error']['message'] and 'about to die' in r[0]['error']['message']" sig.jsonl

printf '{"role": "spawn"}\n{"role": "check"}\n' >group.jsonl
run "timeout" 1 --dataset group.jsonl --task exec --opt "cmd=[\"$ex/group.sh\"]" \
  --opt "env={\"EXEC_PIDFILE\": \"$work/group.pids\"}" \
  --timeout 1500 --retries 0 --concurrency 1 -o group.out.jsonl -q
check "the timed-out call is a timeout" \
  "r[0]['error']['code'] == 'timeout' and r[1]['error'] is None" group.out.jsonl
# The second item ran while the run was still going (concurrency 1), so the
# group was killed by the timeout, not by the end of the run.
check "the timeout killed the process group (leader and child)" \
  "len(r[1]['output']['pids'].split()) == 2 and r[1]['output']['alive'] == ''" group.out.jsonl
gone=1
for pid in $(cat group.pids); do alive "$pid" && gone=0; done
[ $gone -eq 1 ] && ok "no process left after the run" || bad "no process left after the run"

run "output cap" 1 --dataset n.jsonl --task exec --opt 'cmd=["yes"]' \
  --opt max_output_bytes=100000 --timeout 20000 -o cap.jsonl -q
check "endless output stopped at the cap" \
  "'more than 100000 bytes' in r[0]['error']['message'] and 'max_output_bytes' in r[0]['error']['message']" cap.jsonl

run "no shell" 0 --dataset n.jsonl --task exec \
  --opt 'cmd=["echo", "x; touch pwned3", "$(touch pwned4)", "`touch pwned5`", "$HOME"]' -o noshell.jsonl -q
check "arguments reach the program verbatim" \
  "r[0]['output'] == {'output': 'x; touch pwned3 \$(touch pwned4) \`touch pwned5\` \$HOME'}" noshell.jsonl
[ ! -e pwned3 ] && [ ! -e pwned4 ] && [ ! -e pwned5 ] && ok "nothing interpreted" || bad "nothing interpreted"
run "a string cmd needs shell=true" 2 --dataset n.jsonl --task exec --opt 'cmd=echo hi; touch pwned6'
expect_err "string cmd explained" "set shell=true"
[ ! -e pwned6 ] && ok "string cmd not run" || bad "string cmd not run"

run "shell=true" 0 --dataset n.jsonl --task exec --opt shell=true \
  --opt 'cmd=read line; echo "got $line" | tr a-z A-Z; echo second >&2' -o shell.jsonl -q
check "a shell command line when asked" "r[0]['output'] == {'output': 'GOT {\"N\":41}'}" shell.jsonl

mkdir -p sub/dir
run "env and cwd" 0 --dataset n.jsonl --task exec --opt "cmd=[\"$ex/env.sh\"]" \
  --opt 'env={"EXEC_VAR": "x y=z", "HOME": null}' --opt "cwd=$work/sub/dir" -o env.jsonl -q
here=$(cd sub/dir && pwd -P)
check "env set and removed, cwd used" \
  "r[0]['output'] == {'var': 'x y=z', 'home_set': False, 'cwd': '$here'}" env.jsonl

run "missing program" 2 --dataset n.jsonl --task exec --opt 'cmd=["no-such-program-xyz"]'
expect_err "missing program explained" "cannot run 'no-such-program-xyz': not found on PATH"
run "bad mode" 2 --dataset n.jsonl --task exec --opt 'cmd=["cat"]' --opt mode=sometimes
expect_err "bad mode explained" "mode must be"
run "bad cwd" 2 --dataset n.jsonl --task exec --opt 'cmd=["cat"]' --opt cwd=/no/such/dir
expect_err "bad cwd explained" "cwd '/no/such/dir' is not a directory"

# A child that never reads its stdin must not kill the host with SIGPIPE.
python3 -c "
import json
print(json.dumps({'input': 'x' * 300000}))" >big.jsonl
run "child ignores its stdin" 0 --dataset big.jsonl --task exec --opt 'cmd=["echo", "done"]' -o big.out.jsonl -q
check "output despite the unread stdin" "r[0]['output'] == {'output': 'done'}" big.out.jsonl

# Many processes at once.
python3 -c "
import json
for i in range(200): print(json.dumps({'id': i, 'input': 'w%d' % i}))" >many.jsonl
run "200 items, 64 at once" 0 --dataset many.jsonl --task exec --opt 'cmd=["cat"]' -o many.out.jsonl -q
check "every item answered in order" \
  "[x['output']['input'] for x in r] == ['w%d' % i for i in range(200)]" many.out.jsonl

# ---- persistent mode -----------------------------------------------------------
python3 -c "
import json
for i in range(30): print(json.dumps({'id': i, 'input': 'w%d' % i}))" >p.jsonl
run "persistent workers" 0 --dataset p.jsonl --task exec --opt mode=persistent \
  --opt workers=3 --opt "cmd=[\"python3\", \"$ex/worker.py\"]" -o pers.jsonl -q
check "replies in order" "[x['output']['output'] for x in r] == ['W%d' % i for i in range(30)]" pers.jsonl
check "three processes served every item" "len({x['output']['pid'] for x in r}) == 3" pers.jsonl
gone=1
for pid in $(python3 -c "
import json
print(' '.join(str(p) for p in {json.loads(l)['output']['pid'] for l in open('pers.jsonl')}))"); do
  alive "$pid" && gone=0
done
[ $gone -eq 1 ] && ok "workers gone after the run" || bad "workers gone after the run"

python3 -c "
import json
for i in range(8): print(json.dumps({'id': i, 'input': 'c%d' % i, 'crash': i == 3}))" >crash.jsonl
run "a worker crash" 1 --dataset crash.jsonl --task exec --opt mode=persistent --opt workers=1 \
  --opt "cmd=[\"python3\", \"$ex/worker.py\"]" --concurrency 1 --retries 0 -o crash.out.jsonl -q
check "the crashing item fails with a clear, retryable error" \
  "r[3]['error']['code'] == 'retries_exhausted' and 'died while answering' in r[3]['error']['message'] and 'exit status 7' in r[3]['error']['message'] and 'crashing on purpose' in r[3]['error']['message']" crash.out.jsonl
check "later items still work, on a restarted worker" \
  "all(r[i]['error'] is None for i in (0, 1, 2, 4, 5, 6, 7)) and len({r[i]['output']['pid'] for i in (0, 1, 2)}) == 1 and len({r[i]['output']['pid'] for i in (4, 5, 6, 7)}) == 1 and r[0]['output']['pid'] != r[4]['output']['pid']" crash.out.jsonl

printf '{"input": "a"}\n{"input": "b", "hang": true}\n{"input": "c"}\n{"input": "d", "fail": "no such entity"}\n{"input": "e", "garbage": true}\n{"input": "f"}\n' >misc.jsonl
run "timeouts, errors and bad replies" 1 --dataset misc.jsonl --task exec --opt mode=persistent \
  --opt workers=1 --opt "cmd=[\"python3\", \"$ex/worker.py\"]" --concurrency 1 --retries 0 \
  --timeout 1500 -o misc.out.jsonl -q
check "a hung worker times out" "r[1]['error']['code'] == 'timeout'" misc.out.jsonl
check "an error reply fails the item" \
  "r[3]['error']['code'] == 'error' and 'no such entity' in r[3]['error']['message']" misc.out.jsonl
check "a reply that is not JSON fails the item" \
  "r[4]['error']['code'] == 'error' and 'not JSON' in r[4]['error']['message'] and 'this is not json' in r[4]['error']['message']" misc.out.jsonl
check "the others succeed, on restarted workers" \
  "[r[i]['output']['output'] for i in (0, 2, 5)] == ['A', 'C', 'F'] and r[0]['output']['pid'] != r[2]['output']['pid'] != r[5]['output']['pid']" misc.out.jsonl

run "persistent with field input" 0 --dataset qa.jsonl --task exec --opt mode=persistent \
  --opt workers=2 --opt input=field:input --opt 'cmd=["python3", "-u", "-c", "import sys\nfor l in sys.stdin: print(l.strip())"]' \
  -o pf.jsonl -q
check "a field as one JSON line" \
  "[x['output']['output'] for x in r] == [x['input']['input'] for x in r]" pf.jsonl

run "persistent worker that cannot start" 2 --dataset n.jsonl --task exec --opt mode=persistent \
  --opt 'cmd=["/no/such/worker"]'
expect_err "worker start failure explained" "cannot run '/no/such/worker': no such file"

# ---- a child's exit that never reaches the loop --------------------------------
# A metric of fx_sigchld takes SIGCHLD from the host after the first item,
# as a careless library would: libuv then never hears of an exit. exec
# notices a child whose pipes ended without an exit and asks waitpid
# itself, so the run still ends (timeout 120 catches a hang: exit 124).
sig="$build/fixtures/fx_sigchld.la"
for mode in handler ignore; do
  timeout 120 "$bin" run --dataset crash.jsonl --task exec --opt mode=persistent \
    --opt workers=1 --opt "cmd=[\"python3\", \"$ex/worker.py\"]" \
    --metric "$sig" --opt mode=$mode --concurrency 1 --retries 0 \
    -o "lost-$mode.jsonl" -q >out 2>err </dev/null
  got=$?
  [ $got -eq 1 ] && ok "SIGCHLD taken ($mode): the run ends (exit $got)" ||
    bad "SIGCHLD taken ($mode): exit $got, expected 1"
  expect_err "... and says why once" "was never reported to the loop: something in this process takes SIGCHLD"
  [ "$(grep -c 'never reported to the loop' err)" -eq 1 ] && ok "... only once" || bad "... only once"
  check "... later items still work, on a restarted worker" \
    "len(r) == 8 and all(r[i]['error'] is None for i in (0, 1, 2, 4, 5, 6, 7)) and r[0]['output']['pid'] != r[4]['output']['pid']" "lost-$mode.jsonl"
done
check "a zombie child's exit status is still read (SIGCHLD handled elsewhere)" \
  "'died while answering' in r[3]['error']['message'] and 'exit status 7' in r[3]['error']['message']" lost-handler.jsonl
check "a status the kernel threw away is said to be lost (SIGCHLD ignored)" \
  "'exit status was lost' in r[3]['error']['message'] and 'SIGCHLD' in r[3]['error']['message']" lost-ignore.jsonl

# Once mode: a slow first item keeps libuv's SIGCHLD handler installed
# while the metric of the second replaces it.
printf '{"input": "slow", "ms": 600}\n{"input": "fast"}\n{"input": "next"}\n' >lost.jsonl
for mode in handler ignore; do
  timeout 120 "$bin" run --dataset lost.jsonl --task exec \
    --opt "cmd=[\"python3\", \"-c\", \"import json,sys,time; d=json.load(sys.stdin); time.sleep(d.get('ms', 0) / 1000); print(d['input'])\"]" \
    --metric "$sig" --opt mode=$mode --concurrency 2 --retries 0 \
    -o "lost-once-$mode.jsonl" -q >out 2>err </dev/null
  echo $? >"rc-$mode"
done
check "once mode, SIGCHLD handled elsewhere: every exit still read, the run ends" \
  "open('rc-handler').read().strip() == '0' and [x['output']['output'] for x in r] == ['slow', 'fast', 'next']" lost-once-handler.jsonl
check "once mode, SIGCHLD ignored: the items whose status was lost fail saying so, the run ends" \
  "open('rc-ignore').read().strip() == '1' and r[1]['error'] is None and all('exit status was lost' in r[i]['error']['message'] for i in (0, 2))" lost-once-ignore.jsonl

finish
