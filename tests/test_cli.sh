#!/bin/sh
# End-to-end tests of the assay binary, as a user meets it, first half:
# help and usage errors, exit codes, record and summary files, scoring
# mode, CSV and standard input, selection, datasets that are no text,
# outputs that would overwrite an input, limits, and items run on the
# workers. The second half is tests/test_cli2.sh. Needs ASSAY_BIN,
# ASSAY_TEST_SRCDIR and ASSAY_TEST_BUILDDIR (set by make check) and python3
# for JSON checks.
. "${ASSAY_TEST_SRCDIR:?}/clilib.sh"

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
mkdir -p outdir
for flag in "-o outdir" "-o outdir --overwrite" "-o outdir --resume" "-o od.jsonl --summary outdir" "-o od.jsonl --junit outdir"; do
  # shellcheck disable=SC2086
  run "a directory as a file ($flag) refused" 2 run --dataset qa.jsonl --task echo $flag
  expect_err "... saying what to give" "'outdir' is a directory: name a file in it, as 'outdir/results."
done
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
# The same for a JSONL line whose first member, "id", is whole before
# what broke it (a missing brace, a missing comma), with the items parsed
# on the workers (the default) and on the loop (--junit keeps records whole).
printf '{"id":"q1","input":"a","reference":"a"}\n{"id":"q2","input":"b","reference":"b"\n{"id":7,"input":"c" "reference":"c"}\n{"input":"d","reference":"d","id":"q4"\n' >broken.jsonl
printf '{"id":"q1","input":"a","reference":"a"}\n{"id":"q2","input":"b","reference":"b"}\n{"id":7,"input":"c","reference":"c"}\n{"input":"d","reference":"d","id":"q4"}\n' >mended.jsonl
run "JSONL lines cut short or missing a comma" 1 run --dataset broken.jsonl --task echo --metric equals -o bj.jsonl -q
check "... keep the id they begin with (else their index)" \
  "[x['id'] for x in r] == ['q1', 'q2', 7, 3] and all(x['error']['code'] == 'bad_item' for x in r[1:])" bj.jsonl -
run "... and so when the loop parses them" 1 run --dataset broken.jsonl --task echo --metric equals --junit bj.xml -o bjj.jsonl -q
check "... the same ids" "[x['id'] for x in r] == ['q1', 'q2', 7, 3]" bjj.jsonl -
run "... are found by --ids" 1 run --dataset broken.jsonl --task echo --ids q2,7 -o bji.jsonl -q
check "... those two" "[(x['index'], x['id']) for x in r] == [(1, 'q2'), (2, 7)]" bji.jsonl -
run "the mended JSONL" 0 run --dataset mended.jsonl --task echo --metric equals -o mj.jsonl -q
"$bin" compare bj.jsonl mj.jsonl --json >cmpj.json 2>err
check "compare pairs the broken lines that kept their id with the mended ones" \
  "s['pairs'] == 3 and s['only_in_a']['count'] == 1 and s['only_in_b']['count'] == 1" mj.jsonl cmpj.json
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
  "set(x['id'] for x in r if x['error'] and x['error']['code'] == 'bad_item') == {'bad json', 7, 'utf8', 9} and [x['error'] for x in r if x['id'] == 'noref'] == [None, None] and s['engine']['finished'] == 12" mixed-light.jsonl mixed-light.summary.json
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

finish
