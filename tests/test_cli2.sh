#!/bin/sh
# End-to-end tests of the assay binary, second half (the first is
# tests/test_cli.sh; the two run at once, which halves their time under
# valgrind): libcurl loaded on demand, TLS and HTTP/2, CI gates, run
# files, outputs that are no regular file, rescore, progress, options,
# and every plugin loading error. Needs what test_cli.sh needs.
. "${ASSAY_TEST_SRCDIR:?}/clilib.sh"

# ---- libcurl is loaded by the first HTTP request, not at start-up ----------------
# The dynamic linker names every library it maps with LD_DEBUG=files.
LD_DEBUG=files "$bin" run --dataset qa.jsonl --task echo --metric equals -o nocurl.jsonl -q >out 2>err </dev/null
rc=$?
if [ $rc -eq 0 ] && grep -q "file=" err && ! grep -q "libcurl" err; then
  ok "a run without HTTP maps no libcurl"
else
  bad "a run without HTTP maps no libcurl"
fi
# Only rouge stems: libstemmer's relocated tables cost a start-up ~80 page
# faults, so the other metrics must not map it.
if [ $rc -eq 0 ] && grep -q "file=.*equals" err && ! grep -q "libstemmer" err; then
  ok "... nor libstemmer (only rouge needs it)"
else
  bad "... nor libstemmer (only rouge needs it)"
fi
LD_DEBUG=files "$bin" run --dataset qa.jsonl --task echo --metric rouge -o stem.jsonl -q >out 2>err </dev/null
if [ $? -eq 0 ] && grep -q "file=libstemmer" err; then
  ok "... which rouge maps"
else
  bad "... which rouge maps"
fi
# One allocator for the whole process: jemalloc linked from its archive
# must still be the malloc and free of every library and plugin, or memory
# allocated by one and freed by the other corrupts the heap. (A build with
# the C library's malloc has nothing to check, and a sanitizer's runtime
# intercepts malloc by design, calling the C library's itself.)
if "$bin" --version | grep -q jemalloc; then
  LD_DEBUG=bindings "$bin" run --dataset qa.jsonl --task echo --metric equals -o binds.jsonl -q >out 2>err </dev/null
  allocs=$(sed -n "s/.* to \([^ ]*\) \[[0-9]*\]: normal symbol \`\(malloc\|calloc\|realloc\|free\)'.*/\1/p" err | sort -u)
  if [ "$(printf '%s\n' "$allocs" | grep -c .)" -eq 1 ] &&
    grep -q "binding file [^ ]*equals[^ ]* .*symbol \`free'" err; then
    ok "every library and plugin calls jemalloc's malloc and free ($(basename "$allocs"))"
  else
    printf 'bound to: %s\n' "$allocs" >err
    bad "every library and plugin calls jemalloc's malloc and free"
  fi
fi
lport=$(free_port)
"$build/mockllm" --port "$lport" >lmock.out 2>&1 &
lmock_pid=$!
wait_port "$lport"
printf '{"input": "one"}\n{"input": "two"}\n' >lc.jsonl
LD_DEBUG=files "$bin" run --dataset lc.jsonl --task openai_chat --opt "base_url=http://127.0.0.1:$lport/v1" \
  --opt model=x -o lc.jsonl.out -q >out 2>err </dev/null
if [ $? -eq 0 ] && grep -q "file=libcurl.*dynamically loaded" err; then
  ok "the first HTTP request loads libcurl"
else
  bad "the first HTTP request loads libcurl"
fi
check "... and the requests are answered" "[x['output']['output'] for x in r] == ['one', 'two']" lc.jsonl.out -
ASSAY_LIBCURL=$work/no-such-libcurl.so
export ASSAY_LIBCURL
run "a libcurl that cannot be loaded fails the calls" 1 run --dataset lc.jsonl --task openai_chat \
  --opt "base_url=http://127.0.0.1:$lport/v1" --opt model=x -o lc.bad.jsonl -q
unset ASSAY_LIBCURL
check "... saying which file and why" \
  "all(x['output'] is None and \"cannot load libcurl '$work/no-such-libcurl.so' (ASSAY_LIBCURL)\" in x['error']['message'] for x in r) and len(r) == 2" lc.bad.jsonl -
# zlib is on every Debian system, and is no libcurl.
ASSAY_LIBCURL=libz.so.1
export ASSAY_LIBCURL
run "a library that is not libcurl fails the calls" 1 run --dataset lc.jsonl --task openai_chat \
  --opt "base_url=http://127.0.0.1:$lport/v1" --opt model=x -o lc.notcurl.jsonl -q
unset ASSAY_LIBCURL
check "... naming the missing function" \
  "all(\"'libz.so.1' has no curl_global_init\" in x['error']['message'] for x in r) and len(r) == 2" lc.notcurl.jsonl -
kill "$lmock_pid" 2>/dev/null

# ---- TLS: certificates are verified --------------------------------------------------
if command -v openssl >/dev/null 2>&1 &&
  openssl req -x509 -newkey rsa:2048 -nodes -keyout tls.key -out tls.crt -days 1 \
    -subj /CN=127.0.0.1 >/dev/null 2>&1; then
  port=$(free_port)
  openssl s_server -accept "127.0.0.1:$port" -cert tls.crt -key tls.key -www -quiet >/dev/null 2>&1 &
  tls_pid=$!
  wait_port "$port"
  printf '{"input": "hi"}\n' >tls.jsonl
  run "a self-signed server is refused" 1 run --dataset tls.jsonl --task openai_chat \
    --opt "base_url=https://127.0.0.1:$port/v1" --opt model=x -o tls.out.jsonl -q
  check "TLS verification names the certificate, and is not retried" \
    "r[0]['output'] is None and 'certificate' in r[0]['error']['message'] and r[0]['error']['code'] == 'error' and r[0]['attempts'] == 1" tls.out.jsonl -
  kill "$tls_pid" 2>/dev/null
else
  bad "openssl makes a test certificate (./deps installs it)"
fi

# ---- HTTP/2 over TLS, with a CA from SSL_CERT_FILE ---------------------------------
# nghttpd (nghttp2's server) answers any POST with the file at its path.
if ! command -v nghttpd >/dev/null 2>&1; then
  bad "nghttpd is installed (Debian package nghttp2-server; ./deps installs it)"
elif openssl req -x509 -newkey rsa:2048 -nodes -keyout h2.key -out h2.crt -days 1 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1; then
  mkdir -p h2/v1/chat
  printf '%s' '{"id":"c1","object":"chat.completion","model":"h2-model","choices":[{"index":0,"message":{"role":"assistant","content":"over h2"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}' \
    >h2/v1/chat/completions
  port=$(free_port)
  nghttpd -a 127.0.0.1 -d h2 "$port" h2.key h2.crt >nghttpd.log 2>&1 &
  h2_pid=$!
  wait_port "$port"
  printf '{"input": "a"}\n{"input": "b"}\n{"input": "c"}\n' >h2.jsonl
  SSL_CERT_FILE=$(pwd)/h2.crt
  export SSL_CERT_FILE
  run "HTTP/2 over TLS, the CA from SSL_CERT_FILE" 0 run --dataset h2.jsonl \
    --task openai_chat --opt "base_url=https://127.0.0.1:$port/v1" --opt model=x --concurrency 3 -o h2.out.jsonl -q
  unset SSL_CERT_FILE
  check "every answer came over HTTP/2" \
    "[x['output']['output'] for x in r] == ['over h2'] * 3 and s['engine']['http']['responses']['http2'] == 3 and s['engine']['http']['responses']['2xx'] == 3" \
    h2.out.jsonl h2.out.summary.json
  run "without SSL_CERT_FILE the same server is refused" 1 run --dataset h2.jsonl \
    --task openai_chat --opt "base_url=https://127.0.0.1:$port/v1" --opt model=x -o h2.refused.jsonl -q
  check "... naming the certificate" \
    "all(x['output'] is None and 'certificate' in x['error']['message'] for x in r)" h2.refused.jsonl -
  # The same through https_proxy: the mock server stands in for the proxy
  # and tunnels (CONNECT) to nghttpd; TLS and HTTP/2 run inside the tunnel.
  "$build/mockllm" --port 0 --port-file proxy.port >proxy.out 2>&1 &
  proxy_pid=$!
  i=0
  while [ ! -s proxy.port ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
  pport=$(cat proxy.port)
  SSL_CERT_FILE=$(pwd)/h2.crt https_proxy=http://127.0.0.1:$pport
  export SSL_CERT_FILE https_proxy
  run "HTTPS through https_proxy (a CONNECT tunnel)" 0 run --dataset h2.jsonl \
    --task openai_chat --opt "base_url=https://127.0.0.1:$port/v1" --opt model=x -o h2.proxy.jsonl -q
  unset SSL_CERT_FILE https_proxy
  check "every answer came through the tunnel, over HTTP/2" \
    "[x['output']['output'] for x in r] == ['over h2'] * 3 and s['engine']['http']['responses']['http2'] == 3" \
    h2.proxy.jsonl h2.proxy.summary.json
  python3 - "$pport" >pyout 2>&1 <<'EOF2' && ok "the proxy saw the tunnel" || { bad "the proxy saw the tunnel"; tail -n 3 pyout; }
import json, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
st = json.loads(opener.open("http://127.0.0.1:%s/stats" % sys.argv[1]).read())
assert st["tunnels"] >= 1 and st["requests"] == 0, st
EOF2
  kill "$proxy_pid" 2>/dev/null
  kill "$h2_pid" 2>/dev/null
else
  bad "openssl makes a certificate for 127.0.0.1"
fi

# ---- CI gates ---------------------------------------------------------------------------
run "thresholds met" 0 run --dataset qa.jsonl --task echo --metric equals --pass 'equals>=0' --fail-under equals=0.5 -o g0.jsonl -q
check "passed counted" "s['counts']['passed'] == 3 and s['counts']['failed_thresholds'] == 0" g0.jsonl g0.summary.json
run "a record below --pass" 1 run --dataset qa.jsonl --task echo --metric levenshtein_ratio --pass 'levenshtein_ratio>=0.9' -o g1.jsonl -q
expect_err "--pass failures reported even with -q" "failed a --pass threshold"
run "a --pass on a score no record has" 1 run --dataset qa.jsonl --task echo --metric equals --pass 'equal>=1' --pass 'equal<2' -q -o gp.jsonl
expect_err "... names it once, and the scores there are" "assay: --pass: no record has a score 'equal' (check the score name: the scores are: equals)"
[ "$(grep -c "no record has a score" err)" = 1 ] && ok "... once" || bad "... once"
expect_err "... and warned of at the first record, while the run can be stopped" \
  "assay: warning: --pass: the first record has no score 'equal' (it has: equals); if the name is misspelt, the gate fails when the run ends"
[ "$(grep -c "the first record has no score" err)" = 1 ] && ok "... warned once" || bad "... warned once"
run "a --fail-under on a score no record has" 1 run --dataset qa.jsonl --task echo --metric equals --fail-under rouge=0.5 -q -o gf.jsonl
expect_err "... warned of at the first record" "warning: --fail-under: the first record has no score 'rouge' (it has: equals)"
run "gates on scores there are" 0 run --dataset qa.jsonl --task echo --metric equals --pass 'equals>=0' --fail-under equals=0.1 -q -o gg.jsonl
grep -q "first record has no score" err && bad "... no warning" || ok "... no warning"
run "--fail-under" 1 run --dataset qa.jsonl --task echo --metric levenshtein_ratio --fail-under levenshtein_ratio=0.95 -o g2.jsonl -q
expect_err "--fail-under reported" "below 0.95"
run "bad --pass" 2 run --dataset qa.jsonl --task echo --pass 'x=>1'
expect_err "bad --pass explained" "write '>=' instead"
run "junit" 1 run --dataset partial.jsonl --task echo --metric equals --junit j.xml -o g3.jsonl -q
python3 -c "
import sys, xml.etree.ElementTree as ET
t = ET.parse('j.xml').getroot()
s = t.find('testsuite') if t.tag == 'testsuites' else t
cases = s.findall('testcase')
sys.exit(not (len(cases) == 2 and s.get('tests') == '2' and cases[1].find('error') is not None))" \
  && ok "junit report is valid XML with one case per record" || bad "junit report is valid XML with one case per record"

# ---- run files ------------------------------------------------------------------------
cat >run.json <<'EOF2'
{"dataset": "qa.jsonl", "task": {"spec": "echo"},
 "metrics": [{"spec": "equals", "options": {"case_sensitive": true}},
             {"spec": "levenshtein_ratio", "map": {"reference": "input"}}],
 "concurrency": 8, "output": "rf.jsonl"}
EOF2
run "run file" 0 run -c run.json -q
check "run file options applied" \
  "r[0]['scores']['equals']['value'] == 0 and r[0]['scores']['levenshtein_ratio']['value'] == 1 and s['config']['concurrency'] == 8" rf.jsonl rf.summary.json
run "repeat a run from its summary" 0 run -c rf.summary.json -o rf2.jsonl --concurrency 3 -q
python3 -c "
import json, sys
a = json.load(open('rf.summary.json')); b = json.load(open('rf2.summary.json'))
sys.exit(not (a['fingerprint'] == b['fingerprint'] and b['config']['concurrency'] == 3))" \
  && ok "summary repeats the run, command line overrides" || bad "summary repeats the run, command line overrides"
run "a --metric replaces the file's metrics" 0 run -c run.json --metric is_json -o rf3.jsonl -q
check "only the command line's metric" "set(r[0]['scores']) == {'is_json'}" rf3.jsonl -
echo '{"bogus": 1}' >bad-run.json
run "run file unknown key" 2 run -c bad-run.json
expect_err "unknown key named" 'unknown key "bogus"'
echo '{"dataset": "qa.jsonl", "concurency": 4}' >typo-run.json
run "run file: a misspelt key" 2 run -c typo-run.json
expect_err "... the nearest key suggested" 'unknown key "concurency" (did you mean "concurrency"?)'
run "run file missing" 2 run -c nowhere.json
expect_err "... named, and why" "run file 'nowhere.json': No such file or directory"
# refused NAME TEXT MESSAGE: a run file holding TEXT is refused (exit 2),
# saying MESSAGE (where the file is named 'r.json').
refused() {
  printf "$2" >r.json
  run "run file: $1" 2 run -c r.json
  expect_err "... $1: said" "$3"
}
refused "invalid JSON" '{"dataset": "qa.jsonl",\n "task": {"spec": "echo"} "limit": 1}\n' \
  "run file 'r.json': invalid JSON at line 2 near '\"limit\": 1}'"
refused "cut short" '{"dataset": "qa.jsonl",\n' "run file 'r.json': invalid JSON: it ends too early"
refused "text after the object" '{"dataset": "qa.jsonl"} {}\n' \
  "run file 'r.json': invalid JSON at line 1: more text after the value near '{}'"
refused "empty" '' "run file 'r.json': the file is empty"
refused "an unknown key in the task" '{"dataset": "qa.jsonl", "task": {"spec": "echo", "opts": {"field": "x"}}}' \
  'the task has an unknown key "opts" (it takes "spec" and "options")'
refused "a metric's options not an object" \
  '{"dataset": "qa.jsonl", "metrics": [{"spec": "equals"}, {"spec": "is_json", "options": "strict"}]}' \
  'metric 2: "options" must be an object'
refused "a metric as a bare string" '{"dataset": "qa.jsonl", "metrics": ["equals"]}' \
  'metric 1 needs a "spec" (an object like {"spec": "equals"})'
# A run file read from a pipe, larger than one read, and one over the cap.
python3 -c "
import json; print(json.dumps({'dataset': 'qa.jsonl', 'task': {'spec': 'echo'}, 'name': 'n' * 300000}))" >long-run.json
cat long-run.json | "$bin" run -c /dev/stdin -o piped-rf.jsonl -q --overwrite 2>err
[ $? -eq 0 ] && ok "run file: 300 KB from a pipe" || bad "run file: 300 KB from a pipe"
check "... read whole" "len(r) > 0 and len(json.load(open('piped-rf.summary.json'))['name']) == 300000" piped-rf.jsonl -
python3 -c "print(' ' * (16 << 20) + '{}')" >huge-run.json
run "run file: over 16 MiB" 2 run -c huge-run.json
expect_err "... said" "run file 'huge-run.json': larger than 16777216 bytes"
mkdir -p sub && echo '{"dataset": "sub-data.jsonl", "task": {"spec": "echo"}}' >sub/run.json
run "run file: a dataset path not found" 2 run -c sub/run.json -q
expect_err "... says paths are relative to the current directory" "cannot open dataset 'sub-data.jsonl': No such file or directory (the path is from 'sub/run.json'; paths there are relative to the current directory, not to the file)"
run "... not said of a --dataset given" 2 run -c sub/run.json --dataset sub-nope.jsonl -q
grep -q "the path is from" err && bad "... not said of a --dataset given" || ok "... not said of a --dataset given (no hint)"

# ---- outputs that are no regular file: /dev/null, a FIFO, a symlink ---------------------
run "-o /dev/null" 0 run --dataset qa.jsonl --task echo -o /dev/null -q
[ -c /dev/null ] && [ ! -e /dev/null.summary.json ] && ok "... no summary made beside it" || bad "... no summary made beside it"
run "... --resume refused" 2 run --dataset qa.jsonl --task echo -o /dev/null --resume -q
expect_err "... says why" "--resume needs a records file to go on from; '/dev/null' is a device or pipe"
run "... with --summary -" 0 run --dataset qa.jsonl --task echo -o /dev/null --summary - -q
python3 -c "import json, sys; json.load(open('out'))" 2>/dev/null && ok "... the summary on standard output" || bad "... the summary on standard output"
run "--summary /dev/null with --resume" 2 run --dataset qa.jsonl --task echo -o devres.jsonl --summary /dev/null --resume -q
expect_err "... refused" "give --summary a file, not the device or pipe '/dev/null'"
# Each output that is written whole and renamed into place, given a FIFO:
# written into it, and the FIFO left a FIFO (a rename would replace it).
rm -f pipe.fifo
if mkfifo pipe.fifo; then
  fifo_out() { # NAME CHECK ARGS...: runs assay with a reader on the FIFO
  name=$1 want=$2
  shift 2
  timeout 20 cat pipe.fifo >fifo.got &
  reader=$!
  "$bin" "$@" >out 2>err </dev/null
  got=$?
  wait $reader
  if [ "$got" -le 1 ] && [ -p pipe.fifo ] && grep -q "$want" fifo.got; then ok "$name"; else bad "$name: exit $got, $(head -c 200 err)"; fi
  }
  fifo_out "records into a FIFO" '"index":0' run --dataset qa.jsonl --task echo -o pipe.fifo -q
  fifo_out "the summary into a FIFO" '"format_version"' run --dataset qa.jsonl --task echo -o fifo-r.jsonl --summary pipe.fifo -q
  fifo_out "the junit report into a FIFO" '<testsuites' run --dataset qa.jsonl --task echo -o fifo-j.jsonl --junit pipe.fifo -q
  fifo_out "a report into a FIFO" '<html' report fifo-r.jsonl -o pipe.fifo
  fifo_out "merged records into a FIFO" '"index":0' merge fifo-r.jsonl -o pipe.fifo -q
  [ ! -e pipe.fifo.summary.json ] && ok "... no summary made beside it" || bad "... no summary made beside it"
  rm -f pipe.fifo
else
  bad "mkfifo"
fi
echo old >sum-target.json
ln -sf sum-target.json sum-link.json
run "--summary through a symlink" 0 run --dataset qa.jsonl --task echo -o symr.jsonl --summary sum-link.json -q
[ -L sum-link.json ] && grep -q '"format_version"' sum-target.json \
  && ok "... the file it names is replaced, the link kept" || bad "... the file it names is replaced, the link kept"
ls -a | grep -q '\.tmp$' && bad "no temporary files left: $(ls -a | grep '\.tmp$')" || ok "no temporary files left"

# ---- rescore ------------------------------------------------------------------------
run "run to rescore" 1 run --dataset partial.jsonl --task echo --metric equals -o base.jsonl -q --overwrite
: >norecords.jsonl
run "rescore of a file with no records" 0 rescore norecords.jsonl --metric equals -o nr.jsonl -q
expect_err "... warned, naming it a records file" "warning: records file 'norecords.jsonl' holds no records: nothing was run"
run "rescore (a failed item stays failed)" 1 rescore base.jsonl --metric is_json -q
check "rescore keeps the records, new scores" \
  "[x['index'] for x in r] == [0, 1] and r[0]['output'] == {'output': 'x'} and set(r[0]['scores']) == {'is_json'} and r[0]['scores']['is_json']['value'] == 0 and r[1]['error']['code'] == 'bad_item'" base.rescored.jsonl base.rescored.summary.json
check "rescore summary" "s['counts']['items'] == 2 and s['scores']['is_json']['count'] == 1" base.rescored.jsonl base.rescored.summary.json
run "rescore with a map" 1 rescore base.jsonl --metric equals --map reference=input -o rs2.jsonl -q
check "rescore maps fields" "r[0]['scores']['equals']['value'] == 1" rs2.jsonl -
run "rescore refuses a task" 2 rescore base.jsonl --task echo --metric equals
expect_err "rescore task explained" "is not for rescore"
run "rescore needs a metric" 2 rescore base.jsonl
run "rescore needs records" 2 rescore --metric equals
run "rescore of a missing records file" 2 rescore nothere.jsonl --metric equals
expect_err "... named as a records file" "cannot read records file 'nothere.jsonl': No such file or directory"
run "rescore of a dataset, not records" 2 rescore qa.jsonl --metric equals -o rs3.jsonl -q
expect_err "... refused, pointing to run" "'qa.jsonl' is not a records file of 'assay run': line 1 has no index, input and output; rescore scores the outputs stored in one (to score a dataset's own fields, use 'assay run --dataset qa.jsonl --metric ...')"
[ ! -e rs3.jsonl ] && ok "... nothing written" || bad "... nothing written"
{ head -n 1 base.jsonl; echo '{"x": 1}'; echo '[1]'; } >mixed.jsonl
run "rescore: a later line that is no record" 1 rescore mixed.jsonl --metric is_json -o rs4.jsonl -q
check "... becomes a bad_item naming its line" "r[1]['error'] == {'code': 'bad_item', 'message': \"mixed.jsonl:2: not a result record of 'assay run' (it needs index, input and output)\"}" rs4.jsonl -
check "... and a line that is no object too" "r[2]['error']['code'] == 'bad_item' and len(r) == 3" rs4.jsonl -
printf '{"index": 0, "input": {"a": 1}}\n' >notrecords.jsonl
run "rescore: a first record without output" 2 rescore notrecords.jsonl --metric is_json -q
expect_err "... refused" "line 1 has no index, input and output"

# ---- progress ----------------------------------------------------------------------
awk 'BEGIN { for (i = 0; i < 12; i++) printf "{\"id\": \"q%d\", \"input\": \"x%d\"}\n", i, i }' >prog.jsonl
if command -v script >/dev/null 2>&1; then
  # A pseudo-terminal: stderr is a TTY, so one live line is redrawn in place.
  script -qec "'$bin' run --dataset prog.jsonl --task delay --opt ms=400 --concurrency 4 -o tty.jsonl" /dev/null >tty.out 2>&1
  grep -aq '/12 ' tty.out && grep -aq "$(printf '\033\\[K')" tty.out \
    && ok "live progress line on a terminal" || bad "live progress line on a terminal"
  script -qec "'$bin' run --dataset prog.jsonl --task delay --opt ms=400 --concurrency 4 -o tty2.jsonl -q" /dev/null >tty2.out 2>&1
  [ ! -s tty2.out ] && ok "-q: no progress on a terminal" || bad "-q: no progress on a terminal"
fi
"$bin" run --dataset prog.jsonl --task delay --opt ms=300 --concurrency 4 -o np.jsonl >/dev/null 2>err
grep -q "progress" err && bad "no progress lines when stderr is not a terminal" || ok "no progress lines when stderr is not a terminal"

# ---- options ------------------------------------------------------------------------
run "unknown plugin option" 2 run --dataset qa.jsonl --task echo --opt colour=red
expect_err "unknown option lists accepted ones" "it accepts: field"
run "wrong option type" 2 run --dataset qa.jsonl --metric equals --opt case_sensitive=maybe
expect_err "wrong type explained" "must be true or false"
printf '{"output": "123"}\n' >scored.jsonl
run "required option" 2 run --dataset scored.jsonl --metric regex_match
expect_err "required option explained" "needs option 'regex'"
run "invalid regex" 2 run --dataset scored.jsonl --metric regex_match --opt 'regex=(('

# ---- plugins and loading errors ------------------------------------------------------
run "plugins lists built-ins" 0 plugins
grep -q "echo" out && grep -q "levenshtein_ratio" out && ok "built-ins listed" || bad "built-ins listed"
run "plugins describes one" 0 plugins equals
grep -q "case_sensitive" out && ok "options described" || bad "options described"
run "plugins unknown" 2 plugins no_such_plugin
expect_err "not found explained" "cannot find plugin 'no_such_plugin'"
grep -q "did you mean" err && bad "... no suggestion for a name like none" || ok "... no suggestion for a name like none"
run "a --map key the metric does not read" 2 run --dataset qa.jsonl --task echo --metric equals --map refrence=input -o mk.jsonl
expect_err "... refused, naming its inputs" "--map refrence=input: metric 'equals' reads no 'refrence' (its inputs: output, reference)"
[ ! -e mk.jsonl ] && ok "... before the run" || bad "... before the run"
run "a global --map key no metric reads" 2 run --dataset qa.jsonl --task echo --map refrence=input --metric equals --metric is_json
expect_err "... refused, naming all inputs once" "--map refrence=input (before any --metric): no metric reads 'refrence' (they read: output, reference)"
run "a misspelt metric" 2 run --dataset qa.jsonl --metric equal
expect_err "... suggests the near one" "'); did you mean 'equals'? Else give a path like ./equal.so"
run "the start of a plugin's name" 2 run --dataset qa.jsonl --metric regex
expect_err "... suggests the plugin it starts" "did you mean 'regex_match'?"
run "plugins json" 0 plugins --json echo
python3 -c "import json,sys; d=json.load(open('out')); assert d[0]['components'][0]['name']=='echo'" \
  && ok "plugins --json parses" || bad "plugins --json parses"

load() { # load NAME EXPECTED_TEXT SPEC [KIND]
  run "load: $1" 2 run --dataset qa.jsonl --"${4:-task}" "$3" -o never.jsonl
  expect_err "load: $1 explained" "$2"
  [ ! -e never.jsonl ] && ok "load: $1 wrote nothing" || bad "load: $1 wrote nothing"
}
if [ -f "$fx/fx_sync.la" ]; then
  load "no such file" "no such file" ./nowhere/x.so
  mkdir -p adir
  load "a directory" "cannot load plugin './adir': it is a directory; give a plugin's .so or .la file" ./adir
  load "not a plugin" "cannot load plugin" "$src/data/not-a-plugin.so"
  load "bad magic" "bad magic" "$fx/fx_badmagic.la"
  load "newer major" "this host is 1." "$fx/fx_newmajor.la"
  load "newer minor" "this host is 1." "$fx/fx_newminor.la"
  load "no describe symbol" "no describe function" "$fx/fx_nosym.la"
  load "struct too small" "smaller than" "$fx/fx_small.la"
  load "missing field" "descriptor has no name" "$fx/fx_noname.la"
  load "no entry point" "neither run_sync nor run_async" "$fx/fx_noentry.la"
  load "init fails" "failed to initialise" "$fx/fx_initfail.la"
  load "no such component" "has no component 'zzz'" "$fx/fx_sync.la:zzz"
  load "wrong kind" "is a task, not a metric" "$fx/fx_sync.la:sync" metric
  run "plugin dir search" 0 run --dataset qa.jsonl --plugin-dir "$fx" --task fx_sync -o pd.jsonl -q
  run "a --plugin-dir not there" 2 run --dataset qa.jsonl --plugin-dir "$fx/nothere" --task echo -o pd2.jsonl
  expect_err "... said before anything runs" "--plugin-dir '$fx/nothere': No such file or directory"
  [ ! -e pd2.jsonl ] && ok "... nothing written" || bad "... nothing written"
  run "a --plugin-dir that is a file" 2 plugins --plugin-dir qa.jsonl
  expect_err "... said so" "--plugin-dir 'qa.jsonl' is not a directory"
  ASSAY_PLUGIN_PATH=$fx/nothere:$fx "$bin" run --dataset qa.jsonl --task fx_sync -o env.jsonl -q >/dev/null 2>err
  [ $? -eq 0 ] && ok "ASSAY_PLUGIN_PATH search (an entry not there is passed over)" || bad "ASSAY_PLUGIN_PATH search (an entry not there is passed over)"
  cp "$fx/.libs/fx_sync.so" ./fx_sync.so
  run "current directory not searched" 2 run --dataset qa.jsonl --task fx_sync -o cwd.jsonl
  run "explicit ./ path loads" 0 run --dataset qa.jsonl --task ./fx_sync.so -o cwd.jsonl -q
else
  bad "fixtures not built in $fx"
fi

finish
