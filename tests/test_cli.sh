#!/bin/sh
# End-to-end tests of the assay binary: exit codes, record and summary
# files, usage errors and every plugin loading error, as a user meets them.
# Needs ASSAY_BIN, ASSAY_TEST_SRCDIR and ASSAY_TEST_BUILDDIR (set by make
# check) and python3 for JSON checks.
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

# ---- help, version, usage errors --------------------------------------------
run "version" 0 --version
grep -q "plugin ABI 1\." out && ok "version names the ABI" || bad "version names the ABI"
run "help" 0 --help
run "run --help" 0 run --help
grep -q -- "--concurrency" out && ok "run --help lists options" || bad "run --help lists options"
run "plugins --help" 0 plugins --help
run "help run" 0 help run
grep -q -- "--concurrency" out && ok "help run says what run --help says" || bad "help run says what run --help says"
for c in "" run rescore plugins report compare merge; do
  # shellcheck disable=SC2086 # "" must vanish: the main help
  "$bin" $c --help >out 2>&1
  if grep -q '%%' out; then bad "$c --help prints no printf escapes"
  else ok "${c:-assay} --help prints no printf escapes"; fi
done
run "help with an unknown command" 2 help frobnicate
expect_err "... names it" "unknown command 'frobnicate'"
run "no command" 2
run "unknown command" 2 frobnicate
expect_err "unknown command named" "unknown command 'frobnicate'"
run "a misspelt command" 2 rnu --dataset qa.jsonl
expect_err "... suggests the near one" "unknown command 'rnu' (did you mean 'run'?)"
run "a misspelt top-level option" 2 --verison
expect_err "... is an option, not a command" "unknown option '--verison' (did you mean '--version'?)"
run "unknown option" 2 run --dataset qa.jsonl --task echo --bogus
expect_err "unknown option named" "unknown option '--bogus'"
expect_err "points to help" "Try 'assay run --help'."
run "a misspelt option" 2 run --dataset qa.jsonl --task echo --concurency=4
expect_err "... suggests the near one" "unknown option '--concurency=4' (did you mean '--concurrency'?)"
run "a misspelt merge option" 2 merge --overwite
expect_err "... suggests from merge's options" "unknown option '--overwite' (did you mean '--overwrite'?)"
run "missing dataset" 2 run --task echo
expect_err "missing dataset named" "--dataset FILE is required"
run "nothing to run" 2 run --dataset qa.jsonl
run "opt before any component" 2 run --dataset qa.jsonl --opt x=1 --task echo
expect_err "opt placement explained" "must follow the --task or --metric"
run "bad number" 2 run --dataset qa.jsonl --task echo --concurrency lots
expect_err "bad number explained" "--concurrency expects a whole number"
run "missing value" 2 run --dataset qa.jsonl --task
run "two tasks" 2 run --dataset qa.jsonl --task echo --task delay
run "bad map" 2 run --dataset qa.jsonl --metric equals --map reference
expect_err "bad map explained" "--map expects KEY=FIELD"
run "missing dataset file" 2 run --dataset nope.jsonl --task echo -o o.jsonl
expect_err "missing dataset named" "nope.jsonl"
[ ! -e o.jsonl ] && ok "nothing written on a dataset error" || bad "nothing written on a dataset error"

# ---- a first run ----------------------------------------------------------------
run "echo + metrics" 0 run --dataset qa.jsonl --task echo --metric equals \
  --metric levenshtein_ratio -o out.jsonl -q
check "one record per item, in order" \
  "[x['index'] for x in r] == [0, 1, 2] and [x['id'] for x in r] == ['q1', 7, 2]" out.jsonl out.summary.json
check "record fields" \
  "all(set(x) >= {'index','id','trial','input','output','scores','error','attempts','task_ms','metrics_ms'} for x in r) and r[0]['trial'] == 0 and r[0]['attempts'] == 1" out.jsonl out.summary.json
check "output and scores" \
  "r[0]['output'] == {'output': 'Paris'} and r[0]['scores']['equals']['value'] == 1 and abs(r[1]['scores']['levenshtein_ratio']['value'] - 0.8) < 1e-9 and r[1]['scores']['equals']['error'] is None" out.jsonl out.summary.json
check "summary counts and means" \
  "s['format_version'] == 1 and s['counts']['items'] == 3 and s['counts']['ok'] == 3 and abs(s['scores']['equals']['mean'] - 2/3) < 1e-9 and s['status'] == 'completed'" out.jsonl out.summary.json
check "summary names plugins and config" \
  "[p['component'] for p in s['plugins']] == ['echo', 'equals', 'levenshtein_ratio'] and s['config']['concurrency'] == 64 and s['config']['dataset'] == 'qa.jsonl'" out.jsonl out.summary.json
[ ! -s err ] && ok "-q prints nothing" || bad "-q prints nothing"

run "summary table without -q" 0 run --dataset qa.jsonl --task echo --metric equals -o table.jsonl
expect_err "table has the score" "equals"
expect_err "table says where records are" "records: table.jsonl"

run "existing output refused" 2 run --dataset qa.jsonl --task echo -o out.jsonl
expect_err "existing output explained" "already exists; use --overwrite"
check "existing output untouched" "len(r) == 3" out.jsonl -
run "overwrite" 0 run --dataset qa.jsonl --task echo --limit 1 -o out.jsonl --overwrite -q
check "limit and overwrite" "len(r) == 1" out.jsonl -
run "-o into directories not there yet makes them" 0 run --dataset qa.jsonl --task echo --limit 1 -o new/sub/o.jsonl -q
[ -f new/sub/o.jsonl ] && [ -f new/sub/o.summary.json ] && ok "... records and summary in them" || bad "... records and summary in them"
run "--summary and --junit into directories not there yet" 0 run --dataset qa.jsonl --task echo --limit 1 -o n1.jsonl --summary sums/a/n1.json --junit reports/junit.xml -q
[ -f sums/a/n1.json ] && [ -f reports/junit.xml ] && ok "... make them too" || bad "... make them too"
run "-o under a regular file" 2 run --dataset qa.jsonl --task echo -o qa.jsonl/sub/o.jsonl
expect_err "... names the directory it could not make" "cannot create directory 'qa.jsonl/sub' for the output: Not a directory"

run "default output path" 0 run --dataset qa.jsonl --task echo -q
ls assay-runs/qa-*.jsonl >/dev/null 2>&1 && ls assay-runs/qa-*.summary.json >/dev/null 2>&1 \
  && ok "default output in assay-runs/" || bad "default output in assay-runs/"

# ---- failures are results, and exit 1 -------------------------------------------
printf '{"input": "x"}\nnot json\n' >partial.jsonl
run "failed scores exit 1" 1 run --dataset partial.jsonl --task echo --metric equals -o p.jsonl -q
check "missing input explained" \
  "'--map reference=' in r[0]['scores']['equals']['error'] and r[0]['scores']['equals']['value'] is None" p.jsonl -
check "bad item is a record" \
  "r[1]['error']['code'] == 'bad_item' and 'partial.jsonl:2' in r[1]['error']['message']" p.jsonl -
run "echo of a field the item has not" 1 run --dataset qa.jsonl --task echo --opt field=answer -o nf.jsonl -q
check "... names it and the fields there are" \
  "r[0]['error'] == {'code': 'bad_input', 'message': \"item has no field 'answer' (it has: id, input, reference); pick the field to echo with --opt field=NAME\"}" nf.jsonl -
python3 -c "import json; print(json.dumps({'f%d' % i: i for i in range(14)}))" >wide.jsonl
run "... an item of 14 fields" 1 run --dataset wide.jsonl --task echo -o nf2.jsonl -q
check "... lists the first 12" \
  "'(it has: f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, ...)' in r[0]['error']['message']" nf2.jsonl -
run "delay of a field the item has not" 1 run --dataset qa.jsonl --task delay --opt field=answer -o nf3.jsonl -q
check "... names it and the fields there are" \
  "\"item has no field 'answer' (it has: id, input, reference)\" in r[0]['error']['message']" nf3.jsonl -
run "task failures exit 1" 1 run --dataset qa.jsonl --task delay --opt ms=1 \
  --opt fail_rate=1 -o f.jsonl -q
check "task failure recorded, metrics skipped" \
  "all(x['error']['code'] == 'error' and x['output'] is None for x in r)" f.jsonl -

# ---- scoring mode, maps, CSV, stdin ---------------------------------------------
printf '{"output": "123"}\n{"output": "12a"}\n' >scored.jsonl
run "scoring mode" 0 run --dataset scored.jsonl --metric regex_match --opt 'regex=^\d+$' -o s.jsonl -q
check "regex scores" "[x['scores']['regex_match']['value'] for x in r] == [1, 0]" s.jsonl -
printf 'question,expected_answer\nParis?,Paris?\nRome?,Milan\n' >qa.csv
run "csv with --map" 0 run --dataset qa.csv --task echo --opt field=question \
  --metric equals --map reference=expected_answer -o c.jsonl -q
check "csv rows mapped" "[x['scores']['equals']['value'] for x in r] == [1, 0]" c.jsonl -
# A broken CSV row keeps the id it was written with, so that the run after
# the row is mended pairs with it in compare (and --ids finds it).
printf 'id,input,reference\nq1,a,a\nq2,b\nq3,c,c\n' >broken.csv
printf 'id,input,reference\nq1,a,a\nq2,b,b\nq3,c,c\n' >mended.csv
run "a CSV row with a field missing" 1 run --dataset broken.csv --task echo --metric equals -o br.jsonl -q
check "... keeps its id column in its record" \
  "[x['id'] for x in r] == ['q1', 'q2', 'q3'] and r[1]['error']['code'] == 'bad_item' and r[1]['input'] is None" br.jsonl -
run "... is found by --ids" 1 run --dataset broken.csv --task echo --ids q2 --trials 2 -o bri.jsonl -q
check "... alone, in each trial" "[(x['index'], x['id'], x['trial']) for x in r] == [(1, 'q2', 0), (1, 'q2', 1)]" bri.jsonl -
run "the mended dataset" 0 run --dataset mended.csv --task echo --metric equals -o me.jsonl -q
"$bin" compare br.jsonl me.jsonl --json >cmp.json 2>err
check "compare pairs the broken row with the mended one" \
  "s['pairs'] == 3 and s['only_in_a']['count'] == 0 and s['only_in_b']['count'] == 0" me.jsonl cmp.json
printf 'input,id\na,x1\nb,x2,extra\n' >later.csv
run "a ragged row whose id column is not the first" 1 run --dataset later.csv --task echo -o la.jsonl -q
check "... is known by its index (its id column cannot be trusted)" "[x['id'] for x in r] == ['x1', 1]" la.jsonl -
printf '{"input":"a","answers":["a","b"]}\n' >dotted.jsonl
run "dotted map" 0 run --dataset dotted.jsonl --task echo --metric equals --map reference=answers.0 -o d.jsonl -q
check "dotted path resolved" "r[0]['scores']['equals']['value'] == 1" d.jsonl -
run "renamed metric twice" 0 run --dataset qa.jsonl --task echo --metric equals \
  --metric equals --opt name=exact --opt case_sensitive=true -o n.jsonl -q --limit 1
check "two scores from one metric" \
  "r[0]['scores']['equals']['value'] == 1 and r[0]['scores']['exact']['value'] == 0" n.jsonl -
run "same score twice refused" 2 run --dataset qa.jsonl --metric equals --metric equals
expect_err "score clash explained" "two scores named 'equals'"
"$bin" run --dataset - --task echo -o stdin.jsonl -q <qa.jsonl >/dev/null 2>err
[ $? -eq 0 ] && ok "dataset from stdin" || bad "dataset from stdin"
check "stdin records" "len(r) == 3" stdin.jsonl -
# A reader that stops early (| head): the error names standard output.
awk 'BEGIN { for (i = 0; i < 4000; i++) printf "{\"input\": \"item %d\"}\n", i }' >many.jsonl
( "$bin" run --dataset many.jsonl --task echo -o - -q 2>err; echo $? >status ) | head -c 1 >/dev/null
[ "$(cat status)" = 1 ] && ok "a closed stdout exits 1" || bad "a closed stdout exits 1"
expect_err "... naming standard output" "cannot write to standard output: Broken pipe"
"$bin" run --dataset many.jsonl --task echo -o many.out.jsonl -q 2>err
( "$bin" merge many.out.jsonl -o - -q 2>err; echo $? >status ) | head -c 1 >/dev/null
[ "$(cat status)" = 2 ] && ok "merge to a closed stdout exits 2" || bad "merge to a closed stdout exits 2"
expect_err "... naming standard output" "cannot write to standard output: Broken pipe"

# ---- selection: --offset, --ids, --shuffle, --shard, --trials ------------------------
python3 -c "
import json
for i in range(40): print(json.dumps({'id': 'q%d' % i, 'input': 'x%d' % i, 'reference': 'x%d' % i}))
" >sel.jsonl
run "shard" 0 run --dataset sel.jsonl --task echo --shard 3/8 -o sh.jsonl -q
check "shard keeps global indexes" "[x['index'] for x in r] == [3, 11, 19, 27, 35]" sh.jsonl -
JOB_COMPLETION_INDEX=5 "$bin" run --dataset sel.jsonl --task echo --shard auto/8 -o k8s.jsonl -q >/dev/null 2>err
check "shard auto from JOB_COMPLETION_INDEX" "[x['index'] for x in r] == [5, 13, 21, 29, 37]" k8s.jsonl -
SLURM_ARRAY_TASK_ID=3 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_COUNT=8 "$bin" run --dataset sel.jsonl --task echo --shard auto -o slurm.jsonl -q >/dev/null 2>err
check "shard auto from a Slurm array starting at 1" "[x['index'] for x in r] == [2, 10, 18, 26, 34]" slurm.jsonl -
run "shard auto without a scheduler" 2 run --dataset sel.jsonl --task echo --shard auto/8
expect_err "shard auto explained" "JOB_COMPLETION_INDEX"
run "shard index out of range" 2 run --dataset sel.jsonl --task echo --shard 8/8
run "offset and ids" 0 run --dataset sel.jsonl --task echo --offset 10 --ids q3,q12,q30,nope -o ids.jsonl -q
check "ids after the offset" "[x['id'] for x in r] == ['q12', 'q30']" ids.jsonl -
printf 'q7\n\n q9 \n' >ids.txt
run "ids from a file" 0 run --dataset sel.jsonl --task echo --ids @ids.txt -o idf.jsonl -q
check "ids file read" "[x['id'] for x in r] == ['q7', 'q9']" idf.jsonl -
run "ids not in the dataset" 0 run --dataset sel.jsonl --task echo --ids q12,nope,q3,gone,nope -o ids.jsonl -q --overwrite
expect_err "... are named, in the order given, once" "warning: --ids: 2 ids are not in 'sel.jsonl': nope, gone"
run "--ids empty" 2 run --dataset sel.jsonl --task echo --ids , -o ids0.jsonl
expect_err "... says how to give them" "--ids ',' names no ids; give them as ID,ID,... or @FILE"
: >noids.txt
run "--ids from an empty file" 2 run --dataset sel.jsonl --task echo --ids @noids.txt -o ids0.jsonl
expect_err "... says the file is empty" "--ids @noids.txt names no ids (the file is empty; one id per line)"
# ---- datasets that are no text, or hold nothing ---------------------------------
gzip -c qa.jsonl >qa.jsonl.gz
run "a gzip dataset" 2 run --dataset qa.jsonl.gz --task echo -o gz.jsonl
expect_err "... said, with the command that decompresses it" \
  "'qa.jsonl.gz' is gzip-compressed, not text; decompress it first: zcat 'qa.jsonl.gz' > 'qa.jsonl'"
[ ! -e gz.jsonl ] && ok "... nothing written" || bad "... nothing written"
"$bin" run --dataset - --task echo -o gz.jsonl <qa.jsonl.gz >/dev/null 2>err
[ $? -eq 2 ] && grep -q "standard input is gzip-compressed, not text; pipe it through zcat first" err \
  && ok "... piped: said so" || bad "... piped: said so"
run "a gzip records file to report" 2 report qa.jsonl.gz -o gz.html
expect_err "... said" "'qa.jsonl.gz' is gzip-compressed"
run "... to merge" 2 merge qa.jsonl.gz -o gzm.jsonl
expect_err "... said" "'qa.jsonl.gz' is gzip-compressed"
[ ! -e gzm.jsonl ] && ok "... nothing merged" || bad "... nothing merged"
run "... to rescore" 2 rescore qa.jsonl.gz --metric equals -o gzr.jsonl
expect_err "... said" "'qa.jsonl.gz' is gzip-compressed"
: >nothing.jsonl
run "an empty dataset" 0 run --dataset nothing.jsonl --task echo -o nothing-out.jsonl -q
expect_err "... warned, even with -q" "warning: dataset 'nothing.jsonl' holds no items: nothing was run"
# A CSV header that cannot be used is refused at open, as a gzip file is:
# nothing written, the old records kept even with --overwrite.
printf 'input,input\nq,a\n' >dup-header.csv
printf '{"index":0}\n' >dup-out.jsonl
run "a CSV with a column twice in its header" 2 run --dataset dup-header.csv --task echo -o dup-out.jsonl --overwrite -q
expect_err "... said where" "dup-header.csv:1: column 'input' appears twice in the header"
[ "$(cat dup-out.jsonl)" = '{"index":0}' ] && [ ! -e dup-out.summary.json ] \
  && ok "... the old records kept, no summary" || bad "... the old records kept, no summary"
printf '{"input": "q"}\n' >lines.json
run "a .json dataset of JSONL" 2 run --dataset lines.json --task echo -o lines-out.jsonl -q
expect_err "... said what to do" "use --format jsonl for one object per line"
[ ! -e lines-out.jsonl ] && ok "... nothing written" || bad "... nothing written"
printf 'input,reference\n' >header-only.csv
run "a CSV of a header only" 0 run --dataset header-only.csv --task echo -o nothing-out.jsonl -q --overwrite
expect_err "... warned" "warning: dataset 'header-only.csv' holds no items"
run "all ids found" 0 run --dataset sel.jsonl --task echo --ids q12,q3 -o ids.jsonl -q --overwrite
grep -q "warning" err && bad "... no warning" || ok "... no warning"
run "ids without an id field are indexes" 0 run --dataset scored.jsonl --metric regex_match --opt 'regex=^\d+$' --ids 1 -o ids.jsonl -q --overwrite
check "... as in the record" "[(x['index'], x['id']) for x in r] == [(1, 1)]" ids.jsonl -
run "offset past the end" 0 run --dataset sel.jsonl --task echo --offset 40 -o off40.jsonl -q
expect_err "... warns" "warning: --offset 40 skips all of the 40 items of 'sel.jsonl'"
run "shuffle" 0 run --dataset sel.jsonl --task echo --shuffle 42 -o sh1.jsonl -q
run "shuffle again" 0 run --dataset sel.jsonl --task echo --shuffle 42 -o sh2.jsonl -q
check "shuffle is a permutation, not the identity" \
  "sorted(x['index'] for x in r) == list(range(40)) and [x['index'] for x in r] != list(range(40))" sh1.jsonl -
cmp -s sh1.jsonl sh2.jsonl 2>/dev/null || python3 -c "
import json,sys
a=[json.loads(l)['index'] for l in open('sh1.jsonl')]; b=[json.loads(l)['index'] for l in open('sh2.jsonl')]
sys.exit(a != b)" && ok "shuffle is deterministic" || bad "shuffle is deterministic"
run "shuffle sample" 0 run --dataset sel.jsonl --task echo --shuffle 42 --limit 5 -o sample.jsonl -q
check "a sample is the shuffle's start" "len(r) == 5" sample.jsonl -
"$bin" run --dataset - --task echo --shuffle 1 -o x.jsonl <sel.jsonl >/dev/null 2>err
[ $? -eq 2 ] && grep -q "not standard input" err && ok "shuffle refuses stdin" || bad "shuffle refuses stdin"
run "trials" 0 run --dataset sel.jsonl --task echo --limit 3 --trials 2 -o tr.jsonl -q
check "records per trial in order" \
  "[(x['index'], x['trial']) for x in r] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]" tr.jsonl -

# ---- the summary on standard output -----------------------------------------------
"$bin" run --dataset qa.jsonl --task echo --metric equals -o so.jsonl --summary - >so.out 2>err
[ $? -eq 0 ] && ok "--summary - (exit 0)" || bad "--summary - (exit 0)"
check "... the final summary is standard output, as JSON" \
  "len(r) == 3 and s['status'] == 'completed' and s['counts']['items'] == 3 and 'equals' in s['scores']" so.jsonl so.out
[ ! -e ./- ] && [ ! -e so.summary.json ] && ok "... and no summary file" || bad "... and no summary file"
expect_err "... the table says where it went" "summary: standard output"
run "-o - with --summary -" 2 run --dataset qa.jsonl --task echo -o - --summary -
expect_err "... refused" "-o - and --summary - would both write to standard output"
run "--junit -" 2 run --dataset qa.jsonl --task echo -o so.jsonl --junit -
expect_err "... refused" "--junit needs a file (it is written whole at the end), not -"
run "--resume with --summary -" 2 run --dataset qa.jsonl --task echo -o so.jsonl --summary - --resume
expect_err "... refused" "--resume checks the records against their summary file"

# ---- no output overwrites an input or another output ------------------------------
cp qa.jsonl keep.jsonl
run "--output is the dataset, even with --overwrite" 2 run --dataset keep.jsonl --task echo -o ./keep.jsonl --overwrite -q
expect_err "... refused, naming it" "--output './keep.jsonl' is the dataset this run reads; write it to another file"
cmp -s qa.jsonl keep.jsonl && ok "... the dataset is intact" || bad "... the dataset is intact"
ln -s keep.jsonl keep-link.jsonl
run "--summary is the dataset (through a link)" 2 run --dataset keep.jsonl --task echo -o k.jsonl --summary keep-link.jsonl -q
expect_err "... refused" "--summary 'keep-link.jsonl' is the dataset this run reads"
cmp -s qa.jsonl keep.jsonl && ok "... the dataset is intact" || bad "... the dataset is intact"
run "--summary is --output" 2 run --dataset qa.jsonl --task echo -o both.jsonl --summary both.jsonl -q
expect_err "... refused" "--summary 'both.jsonl' is the same file as --output 'both.jsonl': give each its own file"
run "--junit is --output (neither there yet)" 2 run --dataset qa.jsonl --task echo -o new-dir/j.jsonl --junit new-dir/./j.jsonl -q
expect_err "... refused" "--junit 'new-dir/./j.jsonl' is the same file as --output 'new-dir/j.jsonl'"
[ ! -e new-dir/j.jsonl ] && ok "... nothing written" || bad "... nothing written"
"$bin" run --dataset qa.jsonl --task echo -o rs-in.jsonl -q 2>err
cp rs-in.jsonl rs-keep.jsonl
run "rescore onto its own records file" 2 rescore rs-in.jsonl --metric equals -o rs-in.jsonl --overwrite -q
expect_err "... refused" "--output 'rs-in.jsonl' is the records file this run reads"
cmp -s rs-in.jsonl rs-keep.jsonl && ok "... the records are intact" || bad "... the records are intact"

# ---- limits ---------------------------------------------------------------------------
python3 -c "
import json
print(json.dumps({'input': 'x' * 3000}))
print(json.dumps({'input': 'small'}))
" >huge.jsonl
run "a record over --max-record-bytes" 1 run --dataset huge.jsonl --task echo --max-record-bytes 1000 -o huge.out.jsonl -q
check "an oversize record becomes an error record" \
  "r[0]['error']['code'] == 'bad_output' and '--max-record-bytes' in r[0]['error']['message'] and r[0]['output'] is None and r[1]['output'] == {'output': 'small'}" huge.out.jsonl -
head -n 1 huge.out.jsonl >huge.resume.jsonl
run "resume after an oversize record" 1 run --dataset huge.jsonl --task echo --max-record-bytes 1000 -o huge.resume.jsonl --resume -q
check "resumed past it" "len(r) == 2" huge.resume.jsonl -
run "--max-record-bytes too small" 2 run --dataset huge.jsonl --task echo --max-record-bytes 10

# ---- where calls ran: chains and quick calls, counted in the summary ------------------
run "a sync task and a quick metric: chained" 0 run --dataset qa.jsonl --task echo --metric equals -o ch.jsonl -q
check "equals ran in the task's chain, not on the main thread" \
  "s['engine']['chained'] == len(r) and s['engine']['quick'] == 0" ch.jsonl ch.summary.json
run "an async task and a quick metric" 0 run --dataset qa.jsonl --task delay --opt ms=1 --metric equals -o qk.jsonl -q
check "equals ran on the main thread, once per item" \
  "s['engine']['quick'] == len(r) and s['engine']['chained'] == 0" qk.jsonl qk.summary.json

# ---- items parsed, run and printed on the workers (light records) -------------
# A sync task and unmapped sync metrics over JSONL: each worker parses its
# item and prints its record; --junit needs full records and keeps the
# items on the main thread. Both must write the same records and summary.
{
  echo '{"id": "s1", "input": "Paris", "reference": "paris"}'
  echo '{"id": 7, "input": "maple", "reference": "maple"}'
  echo '{"id": 2.5, "input": "caf\u00e9 \"x\"\\n", "reference": "café \"x\"\\n"}'
  echo '{"input": "no id", "reference": "no id"}'
  echo '{"id": "nested", "input": {"a": [1, 2]}, "reference": "x"}'
  echo '{"id": "noref", "input": "x"}'
  echo '{"id": "bad json", "input": '
  echo '[1, 2]'
  printf '{"id": "utf8", "input": "\377"}\n'
  echo
  echo '{"id": "long", "input": "'"$(printf '%0300d' 0)"'", "reference": "y"}'
  echo '{"id": "last", "input": "end", "reference": "end"}'
} >mixed.jsonl
# One worker: with more, whether a chain goes on depends on timing (an
# idle worker may take a metric whose speed is not known yet).
run "worker-finished items: light records" 1 run --dataset mixed.jsonl --task echo --metric equals --metric levenshtein_ratio --max-item-bytes 200 --trials 2 --threads 1 -o mixed-light.jsonl -q
run "worker-finished items: full records (--junit)" 1 run --dataset mixed.jsonl --task echo --metric equals --metric levenshtein_ratio --max-item-bytes 200 --trials 2 --threads 1 -o mixed-full.jsonl -q --junit mixed.xml
# same_summary A.jsonl B.jsonl: summaries equal in counts, scores and
# calls; A's items finished on the workers, B's not.
cat >same_summary.py <<'PYEOF'
import json, sys
sa = json.load(open(sys.argv[1].replace(".jsonl", ".summary.json")))
sb = json.load(open(sys.argv[2].replace(".jsonl", ".summary.json")))
assert sa["counts"] == sb["counts"], (sa["counts"], sb["counts"])
for k in sa["scores"]:
    for f in ("count", "mean", "failures", "min", "max"):
        assert sa["scores"][k][f] == sb["scores"][k][f], (k, f)
ea, eb = sa["engine"], sb["engine"]
for k in ("calls", "chained", "retries", "timeouts", "plugin_faults"):
    assert ea[k] == eb[k], (k, ea[k], eb[k])
assert ea["finished"] > 0 and eb["finished"] == 0, (ea["finished"], eb["finished"])
PYEOF
if same_records mixed-light.jsonl mixed-full.jsonl &&
  python3 same_summary.py mixed-light.jsonl mixed-full.jsonl >pyout 2>&1; then
  ok "worker-finished records and summary equal the main thread's"
else
  bad "worker-finished records and summary equal the main thread's"
  tail -n 3 pyout
fi
check "... malformed lines are bad items, as when read" \
  "sorted(set(x['id'] for x in r if x['error'] and x['error']['code'] == 'bad_item')) == [6, 7, 8, 9] and [x['error'] for x in r if x['id'] == 'noref'] == [None, None] and s['engine']['finished'] == 12" mixed-light.jsonl mixed-light.summary.json
run "worker-finished items with --offset and --shard" 0 run --dataset qa.jsonl --task echo --metric equals --offset 1 --shard 0/2 -o off.jsonl -q
check "... keep their indexes" "[x['index'] for x in r] == [2] and s['engine']['finished'] == 1" off.jsonl off.summary.json
python3 -c "
import json
print(json.dumps({'id': 'big', 'input': 'x' * 3000, 'reference': 'x'}))
print(json.dumps({'id': 9, 'input': 'small', 'reference': 'small'}))
" >hugem.jsonl
run "a worker-finished record over --max-record-bytes" 1 run --dataset hugem.jsonl --task echo --metric equals --max-record-bytes 1000 -o hugem.out.jsonl -q
check "... becomes an error record with its id" \
  "r[0]['error']['code'] == 'bad_output' and r[0]['id'] == 'big' and r[1]['id'] == 9 and r[1]['scores']['equals']['value'] == 1" hugem.out.jsonl -
printf '{"id": "a", "input": "x", "reference": "x"}\n{"id": "b", "input": "y", "reference": "y"}\n' >res.jsonl
run "worker-finished items: a first run" 0 run --dataset res.jsonl --task echo --metric equals -o res1.jsonl -q
head -n 1 res1.jsonl >res2.jsonl
cp res1.summary.json res2.summary.json
run "worker-finished items: resumed" 0 run --dataset res.jsonl --task echo --metric equals -o res2.jsonl --resume -q
check "... give the same records" "[x['id'] for x in r] == ['a', 'b'] and s['counts']['items'] == 2" res2.jsonl res2.summary.json
run "a resumed run's table" 0 run --dataset res.jsonl --task echo --metric equals -o res1.jsonl --resume
grep -q "^run 'res' (completed): 2 items (2 from before, 0 run now), 2 ok, 0 failed in [0-9.]* ms$" err \
  && ok "... says what was there before, and no rate for nothing run" || bad "... says what was there before: $(head -n 1 err)"

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
head -n 12 sel.jsonl >prog.jsonl
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
