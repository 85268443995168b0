#!/bin/sh
# test_merge.sh: `assay merge` and running one evaluation as shards, as a
# user meets them. Hand-made shard files check the merge itself (order,
# bytes kept, duplicates and missing records reported with exit 1, broken
# input refused with exit 2 and the file and line named); real shard runs
# (`assay run --shard I/N` as 8 parallel processes, and `--shard auto/8`
# under Kubernetes and Slurm variables) merged must equal one single run
# record for record; the scale-out guide's scripts and manifest are
# checked and run with the scheduler's variables set by hand.
# Needs ASSAY_BIN, ASSAY_TEST_SRCDIR and ASSAY_TEST_BUILDDIR (set by make
# check) and python3. Ends with "N passed, M failed".
set -u
bin=${ASSAY_BIN:?}
src=${ASSAY_TEST_SRCDIR:?}
build=${ASSAY_TEST_BUILDDIR:?}
work=$(mktemp -d "${TMPDIR:-/tmp}/assay-merge.XXXXXX")
mock_pid=
cleanup() {
  [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || exit 1

. "$src/testlib.sh"

# check NAME PYTHON RECORDS SUMMARY: a Python expression over r (records,
# parsed), lines (the raw lines) and s (summary, or None for "-").
check() {
  if python3 - "$3" "$4" >pyout 2>&1 <<EOF
import json, sys
lines = open(sys.argv[1], 'rb').read().decode().splitlines(True)
r = [json.loads(l) for l in lines]
s = json.load(open(sys.argv[2])) if sys.argv[2] != "-" else None
assert $2
EOF
  then ok "$1"; else bad "$1"; sed 's/^/     | /' pyout | tail -n 3; fi
}

# rec INDEX TRIAL TAG: one hand-made record line, spaced unlike cJSON so
# that a merge that re-prints records instead of copying them shows.
rec() {
  printf '{"index": %s,  "id": "i%s", "trial": %s, "input": {"q": "%s"}, "output": {"output": "%s"}, "scores": {"s": {"value": %s, "reason": null, "error": null}}, "error": null, "attempts": 1, "task_ms": 1.5, "metrics_ms": 0.25}\n' \
    "$1" "$1" "$2" "$3" "$3" "$(( ($1 + $2) % 2 ))"
}

# shard FILE KEY...: a shard file of records for keys INDEX:TRIAL[:TAG].
shard() {
  f=$1
  shift
  : >"$f"
  for k in "$@"; do
    i=${k%%:*} rest=${k#*:}
    t=${rest%%:*} tag=${rest#*:}
    [ "$tag" = "$rest" ] && tag=$f
    rec "$i" "$t" "$tag" >>"$f"
  done
}

# summary FILE STATUS FINGERPRINT TRIALS ITEMS [STARTED]: the summary
# beside shard FILE as `assay run` would leave it.
summary() {
  cat >"${1%.jsonl}.summary.json" <<EOF
{"format_version": 1, "record_format_version": 1, "name": "qa",
 "started": "${6:-2026-11-27T10:00:00Z}", "status": "$2", "fingerprint": "$3",
 "config": {"trials": $4, "dataset": "qa.jsonl"},
 "plugins": [{"kind": "task", "component": "echo"}],
 "engine": {"calls": 3, "finished": 2, "retries": 1, "retries_by_cause": {"429": 1}, "plugin_faults": 0, "threads": 4},
 "counts": {"items": $5}}
EOF
}

# ---- usage -----------------------------------------------------------------------
run "merge --help" 0 merge --help
grep -q -- "--overwrite" out && ok "help lists options" || bad "help lists options"
run "no -o" 2 merge a.jsonl
expect_err "no -o explained" "-o FILE is required"
expect_err "points to help" "Try 'assay merge --help'."
run "no shard" 2 merge -o all.jsonl
run "a shard from standard input" 2 merge - -o all.jsonl
expect_err "... refused, saying why" "merge reads shard files (and their summaries beside them), not standard input"
run "unknown option" 2 merge --bogus a.jsonl -o all.jsonl
expect_err "unknown option named" "unknown option '--bogus'"
run "missing shard file" 2 merge nope.jsonl -o all.jsonl
expect_err "missing shard named" "nope.jsonl"
[ ! -e all.jsonl ] && ok "nothing written for a missing shard" || bad "nothing written for a missing shard"

# ---- hand-made shards: order, bytes, summary -------------------------------------
# Three shards of 6 items x 2 trials, items dealt round-robin (i % 3).
shard a.jsonl 0:0 0:1 3:0 3:1
shard b.jsonl 1:0 1:1 4:0 4:1
shard c.jsonl 2:0 2:1 5:0 5:1
run "merge three shards" 0 merge c.jsonl a.jsonl b.jsonl -o all.jsonl -q
check "dataset order by (index, trial)" \
  "[(x['index'], x['trial']) for x in r] == [(i, t) for i in range(6) for t in range(2)]" all.jsonl all.summary.json
python3 - <<'EOF' >pyout 2>&1 && ok "record lines copied byte for byte" || bad "record lines copied byte for byte"
import json
src = {}
for f in ("a.jsonl", "b.jsonl", "c.jsonl"):
    for l in open(f, "rb"):
        d = json.loads(l)
        src[(d["index"], d["trial"])] = l
out = open("all.jsonl", "rb").read().split(b"\n")
assert out[-1] == b"" and len(out) == 13
assert all(l + b"\n" == src[(json.loads(l)["index"], json.loads(l)["trial"])] for l in out[:-1])
EOF
check "summary recomputed from the records" \
  "s['status'] == 'merged' and s['counts']['items'] == 12 and s['scores']['s']['count'] == 12 and s['scores']['s']['mean'] == 0.5" all.jsonl all.summary.json
check "summary lists the shards" \
  "[(x['file'], x['records']) for x in s['shards']] == [('c.jsonl', 4), ('a.jsonl', 4), ('b.jsonl', 4)] and s['duplicates'] == 0 and s['missing'] is None" all.jsonl all.summary.json
[ ! -s err ] && ok "-q prints nothing when all is well" || bad "-q prints nothing when all is well"

run "existing output refused" 2 merge a.jsonl b.jsonl c.jsonl -o all.jsonl
expect_err "existing output explained" "already exists; use --overwrite"
check "existing output untouched" "len(r) == 12" all.jsonl -
mkdir -p mdir
run "a directory as the output refused" 2 merge a.jsonl b.jsonl -o mdir --overwrite
expect_err "... saying what to give" "--output 'mdir' is a directory: name a file in it, as 'mdir/merged.jsonl'"
run "--overwrite replaces" 0 merge a.jsonl b.jsonl -o all.jsonl --overwrite -q
check "overwritten" "len(r) == 8" all.jsonl -
run "output is a shard: refused even with --overwrite" 2 merge a.jsonl b.jsonl -o a.jsonl --overwrite
expect_err "output-is-shard explained" "output 'a.jsonl' is the shard 'a.jsonl'"
check "shard untouched" "len(r) == 4" a.jsonl -
# (These shards have no summaries yet: the path a shard's would have is
# refused all the same.)
run "--summary is a shard's summary: refused even with --overwrite" 2 merge a.jsonl b.jsonl -o ab.jsonl --summary ./b.summary.json --overwrite
expect_err "... explained" "--summary './b.summary.json' is the summary of the shard 'b.jsonl': write the merged summary to another file"
[ ! -e b.summary.json ] && ok "... nothing written there" || bad "... nothing written there"
run "--summary is a shard" 2 merge a.jsonl b.jsonl -o ab.jsonl --summary b.jsonl
expect_err "... explained" "--summary 'b.jsonl' is the shard 'b.jsonl'"
run "--summary is --output" 2 merge a.jsonl b.jsonl -o ab.jsonl --summary ab.jsonl
expect_err "... explained" "--summary 'ab.jsonl' is the same file as --output 'ab.jsonl': give each its own file"
[ ! -e ab.jsonl ] && ok "... nothing written" || bad "... nothing written"
run "summary path and table" 0 merge a.jsonl b.jsonl c.jsonl -o sub/dir/m.jsonl --summary m-sum.json
[ -f m-sum.json ] && [ ! -e sub/dir/m.summary.json ] && ok "--summary FILE used" || bad "--summary FILE used"
expect_err "table printed" "run (merged): 12 items"
expect_err "table says where records are" "records: sub/dir/m.jsonl"
run "--summary into a directory not there yet" 0 merge a.jsonl b.jsonl c.jsonl -o m9.jsonl --summary sums/m9.json -q
[ -f sums/m9.json ] && ok "... makes it" || bad "... makes it"
run "output under a regular file" 2 merge a.jsonl b.jsonl c.jsonl -o a.jsonl/sub/m.jsonl
expect_err "... names the directory it could not make" "cannot create directory 'a.jsonl/sub' for the output: Not a directory"
"$bin" merge a.jsonl b.jsonl c.jsonl -o ms.jsonl --summary - -q >ms.out 2>err
[ $? -eq 0 ] && ok "merge --summary -" || bad "merge --summary -"
check "... the merged summary is standard output" "len(r) == 12 and s['counts']['items'] == 12" ms.jsonl ms.out
[ ! -e ./- ] && [ ! -e ms.summary.json ] && ok "... and no summary file" || bad "... and no summary file"
run "merge -o - --summary -" 2 merge a.jsonl b.jsonl -o - --summary -
expect_err "... refused" "-o - and --summary - would both write to standard output"
run "merge to stdout" 0 merge a.jsonl b.jsonl c.jsonl -o - -q
check "stdout has the records" "len(r) == 12" out -

# With the shards' summaries: name, config and plugins come from them.
summary a.jsonl completed fp1 2 4 2026-11-27T10:00:05Z
summary b.jsonl completed fp1 2 4
summary c.jsonl completed fp1 2 4 2026-11-27T09:59:59Z
run "complete shards with summaries" 0 merge a.jsonl b.jsonl c.jsonl -o s.jsonl -q
check "run members from the shards' summaries" \
  "s['name'] == 'qa' and s['config']['trials'] == 2 and s['plugins'][0]['component'] == 'echo' and s['fingerprint'] == 'fp1' and s['missing'] == 0 and s['started'] == '2026-11-27T09:59:59Z'" s.jsonl s.summary.json
check "additive engine counters summed" \
  "s['engine']['calls'] == 9 and s['engine']['finished'] == 6 and s['engine']['retries_by_cause']['429'] == 3 and 'threads' not in s['engine']" s.jsonl s.summary.json
cp b.summary.json b-sum.keep
run "--summary onto a shard's own summary" 2 merge a.jsonl b.jsonl c.jsonl -o s2.jsonl --summary b.summary.json --overwrite -q
cmp -s b.summary.json b-sum.keep && [ ! -e s2.jsonl ] && ok "... refused, that summary untouched" || bad "... refused, that summary untouched"

# ---- duplicates -------------------------------------------------------------------
shard d1.jsonl 0:0:first 1:0 2:0:first
shard d2.jsonl 2:0:second 3:0 3:0:again 4:0
run "duplicates exit 1" 1 merge d1.jsonl d2.jsonl -o dup.jsonl -q
expect_err "duplicate across shards listed" "duplicate: index 2 trial 0 at d2.jsonl:1 (kept the first, d1.jsonl:3)"
expect_err "duplicate within a shard listed" "duplicate: index 3 trial 0 at d2.jsonl:3 (kept the first, d2.jsonl:2)"
expect_err "duplicates counted" "2 duplicates"
check "merged file still written, first occurrence kept" \
  "[x['index'] for x in r] == [0, 1, 2, 3, 4] and r[2]['output']['output'] == 'first' and r[3]['output']['output'] == 'd2.jsonl'" dup.jsonl dup.summary.json
check "summary counts the kept records and the duplicates" \
  "s['counts']['items'] == 5 and s['duplicates'] == 2" dup.jsonl dup.summary.json
# Many duplicates: 20 listed, the rest counted.
shard many1.jsonl $(seq -f '%g:0' 0 29)
cp many1.jsonl many2.jsonl
run "many duplicates exit 1" 1 merge many1.jsonl many2.jsonl -o manydup.jsonl -q
n=$(grep -c '^assay: duplicate:' err)
[ "$n" -eq 20 ] && ok "20 duplicates listed" || bad "20 duplicates listed (got $n)"
expect_err "the rest counted" "... and 10 more duplicates"

# ---- missing records (gaps) ----------------------------------------------------------
shard g1.jsonl 0:0 0:1 2:0 2:1 4:0 4:1
shard g2.jsonl 1:0 3:0 3:1
summary g1.jsonl completed fp1 2 6
summary g2.jsonl completed fp1 2 3
run "gaps exit 1" 1 merge g1.jsonl g2.jsonl -o gap.jsonl -q
expect_err "gap listed" "missing: index 1 trial 1"
grep -q "missing: index 0\|missing: index 2\|missing: index 3\|missing: index 4" err \
  && bad "only the missing record is listed" || ok "only the missing record is listed"
expect_err "gap counted" "1 records missing between index 0 and the largest index"
check "merged file written despite the gap" "len(r) == 9" gap.jsonl gap.summary.json
check "summary counts the missing" "s['missing'] == 1" gap.jsonl gap.summary.json
# A missing whole shard (items 1, 3, 5 of 0..6) and a leading gap.
shard h0.jsonl 2:0 4:0 6:0
summary h0.jsonl completed fp1 1 3
run "missing shard: gaps exit 1" 1 merge h0.jsonl -o h.jsonl -q
for k in 0 1 3 5; do
  grep -qF "missing: index $k trial 0" err && ok "gap at $k listed" || bad "gap at $k listed"
done
# Many gaps: 20 listed, the rest counted.
shard big.jsonl 0:0 100:0
summary big.jsonl completed fp1 1 2
run "many gaps exit 1" 1 merge big.jsonl -o big-m.jsonl -q
n=$(grep -c '^assay: missing:' err)
[ "$n" -eq 20 ] && ok "20 gaps listed" || bad "20 gaps listed (got $n)"
expect_err "the other gaps counted" "... and 79 more missing records"
# Without every summary saying "completed", gaps are not checked...
rm g2.summary.json
run "gaps unchecked without a summary" 0 merge g1.jsonl g2.jsonl -o gap2.jsonl
expect_err "unchecked gaps explained" "'g2.jsonl' has no summary beside it"
# ...and a shard that did not complete is itself a problem.
summary g2.jsonl interrupted fp1 2 3
run "unfinished shard exit 1" 1 merge g1.jsonl g2.jsonl -o gap3.jsonl -q
expect_err "unfinished shard named" "shard 'g2.jsonl' did not complete (status 'interrupted'"
# A completed shard that lost records after its run.
summary g2.jsonl completed fp1 2 5
run "shard shorter than its summary exit 1" 1 merge g1.jsonl g2.jsonl -o gap4.jsonl -q
expect_err "lost records explained" "shard 'g2.jsonl' holds 3 records but its summary 'g2.summary.json' counts 5"
# An incomplete last line (a crash mid-write) is skipped and reported.
shard t.jsonl 0:0 1:0
rec 2 0 torn | tr -d '\n' | head -c 40 >>t.jsonl
run "torn last line exit 1" 1 merge t.jsonl -o torn.jsonl -q
expect_err "torn line named" "t.jsonl:3: incomplete last line"
check "records before it kept" "len(r) == 2" torn.jsonl -

# ---- input that is refused (exit 2, nothing written) -----------------------------------
shard o1.jsonl 0:0 2:0 4:0
shard o2.jsonl 1:0 5:0 3:0
run "out-of-order shard refused" 2 merge o1.jsonl o2.jsonl -o ord.jsonl
expect_err "out-of-order line named" "o2.jsonl:3: record index 3 trial 0 comes after index 5 trial 0"
[ ! -e ord.jsonl ] && ok "nothing written for an out-of-order shard" || bad "nothing written for an out-of-order shard"
ls -a | grep -q "^\.ord\.jsonl\..*\.tmp$" && bad "no temporary file left" || ok "no temporary file left"
# Interrupted while it writes (a shard that is a FIFO holds it mid-way):
# its temporary file is removed, and the signal ends it.
rm -f slow.fifo
if mkfifo slow.fifo; then
  shard one.jsonl 0:0
  { cat one.jsonl; sleep 20; } >slow.fifo &
  writer=$!
  "$bin" merge slow.fifo -o int.jsonl -q 2>err &
  merger=$!
  i=0
  while ! ls -a | grep -q '^\.int\.jsonl\..*\.tmp$' && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  ls -a | grep -q '^\.int\.jsonl\..*\.tmp$' && ok "interrupted merge: writing a temporary file" || bad "interrupted merge: writing a temporary file"
  kill -INT $merger
  wait $merger
  got=$?
  kill $writer 2>/dev/null
  [ $got -eq 130 ] && ok "... ends by the signal (exit 130)" || bad "... ends by the signal: exit $got"
  ls -a | grep -q '^\.int\.jsonl\..*\.tmp$' && bad "... its temporary file removed" || ok "... its temporary file removed"
  [ ! -e int.jsonl ] && ok "... no output" || bad "... no output"
  rm -f slow.fifo
else
  bad "mkfifo"
fi
shard o3.jsonl 0:1 0:0
run "trials out of order refused" 2 merge o3.jsonl -o ord.jsonl
expect_err "trial order named" "o3.jsonl:2:"

shard f1.jsonl 0:0 2:0
shard f2.jsonl 1:0 3:0
summary f1.jsonl completed 1111111111111111 1 2
summary f2.jsonl completed 2222222222222222 1 2
run "fingerprint mismatch refused" 2 merge f1.jsonl f2.jsonl -o fp.jsonl
expect_err "both files named" "cannot merge 'f1.jsonl' with 'f2.jsonl'"
expect_err "both summaries named" "'f1.summary.json' and 'f2.summary.json'"
[ ! -e fp.jsonl ] && ok "nothing written for a fingerprint mismatch" || bad "nothing written for a fingerprint mismatch"

for case in "not json|{\"index\": 1, oops" "an array|[1, 2]" "no index|{\"trial\": 0}" \
  "no trial|{\"index\": 1}" "index not whole|{\"index\": 1.5, \"trial\": 0}" \
  "negative index|{\"index\": -1, \"trial\": 0}" "index a string|{\"index\": \"1\", \"trial\": 0}" \
  "blank line|" "two values|{\"index\": 1, \"trial\": 0} {}"; do
  what=${case%%|*} line=${case#*|}
  { rec 0 0 x; printf '%s\n' "$line"; rec 2 0 x; } >badline.jsonl
  run "bad line refused: $what" 2 merge badline.jsonl -o bl.jsonl
  expect_err "bad line named: $what" "badline.jsonl:2: not a record"
done
{ rec 0 0 x; printf '{"index": 1, "trial": 0, "input": "\377"}\n'; } >badutf.jsonl
run "invalid UTF-8 refused" 2 merge badutf.jsonl -o bu.jsonl
expect_err "invalid UTF-8 named" "badutf.jsonl:2: not a record (not UTF-8"
{ rec 0 0 x; rec 1 0 "$(head -c 3000 /dev/zero | tr '\0' x)"; } >long.jsonl
run "over-long line refused" 2 merge long.jsonl -o ll.jsonl --max-record-bytes 2048
expect_err "over-long line named" "long.jsonl:2: line longer than 2048 bytes"
printf 'not json\n' >nj.summary.json
shard nj.jsonl 0:0
run "unreadable shard summary refused" 2 merge nj.jsonl -o nj-m.jsonl
expect_err "summary named, and why" "summary 'nj.summary.json' is not a summary written by assay (invalid JSON at line 1 near 'not json')"

# ---- real shards: 8 processes merged equal one run ---------------------------------
python3 - <<'EOF'
import json
with open("qa.jsonl", "w") as f:
    for i in range(203):
        ref = "w%d" % i if i % 5 else "other"
        if i == 77:
            f.write("not json\n")  # a malformed line is an item too
            continue
        f.write(json.dumps({"id": "q%d" % i, "input": "w%d" % i, "reference": ref}) + "\n")
EOF
# An async task with jitter, so records finish out of order; 1 item in 10
# fails (chosen by index), so failures are merged too.
job="--dataset qa.jsonl --task delay --opt ms=2 --opt jitter_ms=15 --opt fail_rate=0.1 --metric equals --metric levenshtein_ratio --trials 2 --concurrency 16 --threads 2 -q"
# shellcheck disable=SC2086
"$bin" run $job -o single.jsonl >/dev/null 2>err
[ $? -eq 1 ] && ok "single run (exit 1: some items fail)" || bad "single run (exit 1: some items fail)"

if ! "$bin" run --help | grep -q -- "--shard"; then
  bad "assay run has --shard"
else
  mkdir -p sh
  pids=
  for i in 0 1 2 3 4 5 6 7; do
    # shellcheck disable=SC2086
    "$bin" run $job --shard "$i/8" -o "sh/shard-$i.jsonl" >/dev/null 2>"sh/err-$i" &
    pids="$pids $!"
  done
  st=0
  for p in $pids; do
    wait "$p"
    s=$?
    [ "$s" -le 1 ] || st=$s
  done
  [ "$st" -eq 0 ] && ok "8 shard processes ran" || bad "8 shard processes ran (exit $st)"
  check "shard 3 holds only items i % 8 == 3, in order, both trials" \
    "[(x['index'], x['trial']) for x in r] == [(i, t) for i in range(3, 203, 8) for t in range(2)]" sh/shard-3.jsonl sh/shard-3.summary.json
  check "a shard's summary says it completed" \
    "s['status'] == 'completed' and s['counts']['items'] == 50" sh/shard-3.jsonl sh/shard-3.summary.json
  run "merge 8 shards" 0 merge sh/shard-7.jsonl sh/shard-0.jsonl sh/shard-1.jsonl sh/shard-2.jsonl \
    sh/shard-3.jsonl sh/shard-4.jsonl sh/shard-5.jsonl sh/shard-6.jsonl -o merged.jsonl -q
  same_records merged.jsonl single.jsonl && ok "8 shards merged equal one run, record for record" \
    || { bad "8 shards merged equal one run, record for record"; sed 's/^/     | /' pyout | tail -n 3; }
  python3 - <<'EOF' >pyout 2>&1 && ok "merged summary equals the single run's (counts, scores, fingerprint)" || { bad "merged summary equals the single run's"; tail -n 3 pyout; }
import json
m = json.load(open("merged.summary.json"))
s = json.load(open("single.summary.json"))
assert m["counts"] == s["counts"], (m["counts"], s["counts"])
assert m["fingerprint"] == s["fingerprint"]
assert m["missing"] == 0 and m["duplicates"] == 0
for k, v in s["scores"].items():
    for f in ("count", "failures", "min", "max"):
        assert m["scores"][k][f] == v[f], (k, f)
    for f in ("mean", "std", "stderr"):
        assert abs(m["scores"][k][f] - v[f]) < 1e-12, (k, f)
EOF
  run "a missing shard is found" 1 merge sh/shard-0.jsonl sh/shard-1.jsonl sh/shard-2.jsonl \
    sh/shard-4.jsonl sh/shard-5.jsonl sh/shard-6.jsonl sh/shard-7.jsonl -o no3.jsonl -q
  expect_err "its first item is listed" "missing: index 3 trial 0"
  expect_err "the shard itself is named" "missing shard: none of the files is shard 3/8"
  # Merged files merge again: two halves, then the whole.
  run "first half: shards 4-7 missing" 1 merge sh/shard-0.jsonl sh/shard-1.jsonl sh/shard-2.jsonl \
    sh/shard-3.jsonl -o half1.jsonl -q
  expect_err "the other half named" "missing shard: none of the files is shard 7/8"
  run "second half" 1 merge sh/shard-4.jsonl sh/shard-5.jsonl sh/shard-6.jsonl \
    sh/shard-7.jsonl -o half2.jsonl -q
  run "the halves merge into the whole" 0 merge half2.jsonl half1.jsonl -o whole.jsonl -q
  same_records whole.jsonl single.jsonl && ok "merged halves equal one run" \
    || { bad "merged halves equal one run"; sed 's/^/     | /' pyout | tail -n 3; }
  check "the whole's summary checked for gaps" \
    "s['missing'] == 0 and s['missing_shards'] == 0 and sorted(sum((x['shard'] for x in s['shards']), [])) == ['%d/8' % i for i in range(8)]" whole.jsonl whole.summary.json
  # Shards run with --shuffle are in the shuffle's order; their summaries
  # say so and merge sorts them.
  for i in 0 1 2 3; do
    # shellcheck disable=SC2086
    "$bin" run $job --shuffle 7 --shard "$i/4" -o "sh/shuf-$i.jsonl" >/dev/null 2>&1
  done
  check "a --shuffle shard is not in dataset order" \
    "[x['index'] for x in r] != sorted(x['index'] for x in r)" sh/shuf-1.jsonl -
  run "merge 4 shuffled shards" 0 merge sh/shuf-2.jsonl sh/shuf-0.jsonl sh/shuf-3.jsonl \
    sh/shuf-1.jsonl -o shuf.jsonl
  same_records shuf.jsonl single.jsonl && ok "shuffled shards merged equal one run, record for record" \
    || { bad "shuffled shards merged equal one run, record for record"; sed 's/^/     | /' pyout | tail -n 3; }
  check "missing records checked for shuffled shards" \
    "s['missing'] == 0 and s['duplicates'] == 0" shuf.jsonl shuf.summary.json
  if grep -q "not checked" err; then bad "no 'not checked' note for --shuffle alone"; else ok "no 'not checked' note for --shuffle alone"; fi
  head -n 20 sh/shuf-1.jsonl >sh/shufcut.jsonl
  sed 's/"status": *"completed"/"status": "interrupted"/' sh/shuf-1.summary.json >sh/shufcut.summary.json
  run "a cut shuffled shard merges, reported unfinished" 1 merge sh/shufcut.jsonl -o shufcut.jsonl -q
  check "its 20 records, sorted" \
    "len(r) == 20 and [x['index'] for x in r] == sorted(x['index'] for x in r)" shufcut.jsonl -
  run "a shard given twice is found" 1 merge sh/shard-0.jsonl sh/shard-1.jsonl sh/shard-2.jsonl \
    sh/shard-3.jsonl sh/shard-4.jsonl sh/shard-5.jsonl sh/shard-6.jsonl sh/shard-7.jsonl \
    sh/shard-7.jsonl -o twice.jsonl -q
  expect_err "its duplicates are counted" "50 duplicates"

  # --shard auto/8 under a Kubernetes Indexed Job and a Slurm job array.
  mkdir -p k8s slurm slurm2
  for i in 0 1 2 3 4 5 6 7; do
    # shellcheck disable=SC2086
    JOB_COMPLETION_INDEX=$i "$bin" run $job --shard auto/8 -o "k8s/shard-$i.jsonl" >/dev/null 2>&1 &
    # shellcheck disable=SC2086
    SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_TASK_COUNT=8 "$bin" run $job --shard auto \
      -o "slurm/shard-$i.jsonl" >/dev/null 2>&1 &
    # shellcheck disable=SC2086
    SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_TASK_COUNT=8 "$bin" run $job --shard auto/8 \
      -o "slurm2/shard-$i.jsonl" >/dev/null 2>&1 &
  done
  wait
  for d in k8s slurm slurm2; do
    run "merge $d shards" 0 merge $d/shard-*.jsonl -o "$d.jsonl" -q
    same_records "$d.jsonl" single.jsonl && ok "auto/8 ($d) merged equal one run" \
      || { bad "auto/8 ($d) merged equal one run"; sed 's/^/     | /' pyout | tail -n 3; }
  done
  check "JOB_COMPLETION_INDEX=5 ran items i % 8 == 5" \
    "sorted({x['index'] for x in r}) == list(range(5, 203, 8))" k8s/shard-5.jsonl -
  check "SLURM_ARRAY_TASK_ID=6 ran items i % 8 == 6" \
    "sorted({x['index'] for x in r}) == list(range(6, 203, 8))" slurm/shard-6.jsonl -
  # shellcheck disable=SC2086
  env -u JOB_COMPLETION_INDEX -u SLURM_ARRAY_TASK_ID "$bin" run $job --shard auto/8 -o none.jsonl >out 2>err
  [ $? -eq 2 ] && ok "auto without a scheduler refused" || bad "auto without a scheduler refused"
  expect_err "auto explains the variables" "JOB_COMPLETION_INDEX"

  # A shard restarted with --resume goes on from its records.
  head -n 7 sh/shard-2.jsonl >resumed.jsonl
  sed -n 8p sh/shard-2.jsonl | head -c 30 >>resumed.jsonl
  # shellcheck disable=SC2086
  "$bin" run $job --shard 2/8 -o resumed.jsonl --resume >/dev/null 2>err
  [ $? -eq 1 ] && ok "a shard resumes (exit 1: some items fail)" || bad "a shard resumes"
  same_records resumed.jsonl sh/shard-2.jsonl && ok "a resumed shard equals an uninterrupted one" \
    || { bad "a resumed shard equals an uninterrupted one"; sed 's/^/     | /' pyout | tail -n 3; }
fi

# ---- docs/scale-out.md: the manifests and scripts are valid and work -----------------
doc=$src/../docs/scale-out.md
# block NAME: the fenced block after "<!-- scale-out: NAME -->".
block() {
  awk -v name="$1" '
    $0 == "<!-- scale-out: " name " -->" { want = 1; next }
    want && /^```/ { if (inside) exit; inside = 1; next }
    inside { print }' "$doc"
}
for b in local-loop k8s-shards k8s-merge shards.sbatch merge.sbatch submit; do
  block "$b" >"doc-$b"
  [ -s "doc-$b" ] && ok "guide has the $b block" || bad "guide has the $b block"
done
for b in local-loop shards.sbatch merge.sbatch submit; do
  sh -n "doc-$b" 2>err && ok "sh -n $b" || bad "sh -n $b"
done
grep -qx '#SBATCH --array=0-7' doc-shards.sbatch && ok "sbatch script is an array 0-7" || bad "sbatch script is an array 0-7"
grep -q -- '--shard auto' doc-shards.sbatch && ok "sbatch script shards with --shard auto" || bad "sbatch script shards with --shard auto"
grep -q 'sbatch --dependency=afterok:' doc-submit && ok "merge job depends on the array (afterok)" || bad "merge job depends on the array (afterok)"

# The manifests: valid YAML, the Job fields a cluster needs, and the shell
# commands they run (written out for the run below).
if python3 - doc-k8s-shards doc-k8s-merge >pyout 2>&1 <<'EOF'
import sys, yaml
shards = list(yaml.safe_load_all(open(sys.argv[1])))
merge = list(yaml.safe_load_all(open(sys.argv[2])))
pvc = [d for d in shards if d["kind"] == "PersistentVolumeClaim"]
jobs = [d for d in shards + merge if d["kind"] == "Job"]
assert len(pvc) == 1 and len(jobs) == 2
assert pvc[0]["apiVersion"] == "v1" and "ReadWriteMany" in pvc[0]["spec"]["accessModes"]
for j in jobs:
    assert j["apiVersion"] == "batch/v1" and j["metadata"]["name"]
    pod = j["spec"]["template"]["spec"]
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    vols = {v["name"]: v for v in pod["volumes"]}
    for v in vols.values():
        assert v["persistentVolumeClaim"]["claimName"] == pvc[0]["metadata"]["name"]
    for c in pod["containers"]:
        assert c["name"] and c["image"] and c["command"] == ["sh", "-c"]
        assert len(c["args"]) == 1
        for m in c["volumeMounts"]:
            assert m["name"] in vols and m["mountPath"].startswith("/")
s, m = jobs
spec = s["spec"]
assert spec["completionMode"] == "Indexed", spec
assert spec["completions"] == 8 and spec["parallelism"] == 8, spec
cmd = s["spec"]["template"]["spec"]["containers"][0]["args"][0]
assert "--shard auto/8" in cmd and "--output /results/shard-$(JOB_COMPLETION_INDEX).jsonl" in cmd, cmd
open("k8s-shard.sh", "w").write(cmd + "\n")
mcmd = m["spec"]["template"]["spec"]["containers"][0]["args"][0]
assert mcmd.startswith("assay merge "), mcmd
open("k8s-merge.sh", "w").write(mcmd + "\n")
EOF
then ok "Kubernetes manifests: Indexed Job of 8, merge Job, one shared volume"
else bad "Kubernetes manifests: Indexed Job of 8, merge Job, one shared volume"; sed 's/^/     | /' pyout | tail -n 3; fi

# Run them for real: `assay` on PATH, the mock OpenAI server as the API,
# the scheduler's variables set by hand, the shared paths moved here.
mock=$build/mockllm
if [ ! -x "$mock" ]; then
  bad "mock server $mock is built (make check builds it)"
else
  "$mock" --port 0 --port-file mock.port >mock.out 2>&1 &
  mock_pid=$!
  n=0
  while [ ! -s mock.port ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n + 1)); done
  OPENAI_BASE_URL=http://127.0.0.1:$(cat mock.port)/v1
  OPENAI_API_KEY=test-key
  export OPENAI_BASE_URL OPENAI_API_KEY
  mkdir -p pathbin
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$bin" >pathbin/assay
  chmod +x pathbin/assay
  PATH=$work/pathbin:$PATH
  export PATH
  # 40 items; item 13 has no reference, so a score fails and every shard
  # holding it exits 1, which the recipes must take as success.
  python3 - <<'EOF'
import json
with open("doc-qa.jsonl", "w") as f:
    for i in range(40):
        d = {"id": "d%d" % i, "input": "answer %d" % i}
        if i != 13:
            d["reference"] = "answer %d" % i
        f.write(json.dumps(d) + "\n")
EOF
  # doc_check NAME FILE: the merged file of a recipe is complete.
  doc_check() {
    check "$1" "[x['index'] for x in r] == list(range(40)) and all(x['output']['output'] == 'answer %d' % x['index'] for x in r) and r[13]['scores']['equals']['value'] is None and s['counts']['items'] == 40 and s['missing'] == 0" "$2" "${2%.jsonl}.summary.json"
  }

  mkdir -p k8s-vol/data k8s-vol/results
  cp doc-qa.jsonl k8s-vol/data/qa.jsonl
  sed "s#/data/#$work/k8s-vol/data/#g; s#/results/#$work/k8s-vol/results/#g" k8s-shard.sh >k8s-shard.run
  sed "s#/results/#$work/k8s-vol/results/#g" k8s-merge.sh >k8s-merge.run
  pids=
  for i in 0 1 2 3 4 5 6 7; do
    # Kubernetes expands $(JOB_COMPLETION_INDEX) in args before sh runs.
    sed "s#\$(JOB_COMPLETION_INDEX)#$i#g" k8s-shard.run >"k8s-shard-$i.run"
    JOB_COMPLETION_INDEX=$i sh "k8s-shard-$i.run" >"k8s-$i.log" 2>&1 &
    pids="$pids $!"
  done
  st=0
  for p in $pids; do wait "$p" || st=1; done
  [ $st -eq 0 ] && ok "the Indexed Job's 8 pods succeed" || { bad "the Indexed Job's 8 pods succeed"; cat k8s-*.log | head -n 5; }
  sh k8s-merge.run >k8s-merge.log 2>&1 && ok "the merge Job succeeds" || { bad "the merge Job succeeds"; head -n 5 k8s-merge.log; }
  doc_check "Kubernetes recipe merged every item" k8s-vol/results/qa.jsonl

  mkdir -p slurm-doc
  cp doc-qa.jsonl slurm-doc/qa.jsonl
  for b in shards merge; do
    sed "s#/shared/evals/qa#$work/slurm-doc#g" "doc-$b.sbatch" >"$b.sbatch"
  done
  pids=
  for i in 0 1 2 3 4 5 6 7; do
    SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_TASK_COUNT=8 SLURM_ARRAY_TASK_MIN=0 SLURM_CPUS_PER_TASK=1 \
      sh shards.sbatch >"slurm-$i.log" 2>&1 &
    pids="$pids $!"
  done
  st=0
  for p in $pids; do wait "$p" || st=1; done
  [ $st -eq 0 ] && ok "the Slurm array's 8 tasks succeed" || { bad "the Slurm array's 8 tasks succeed"; cat slurm-*.log | head -n 5; }
  sh merge.sbatch >slurm-merge.log 2>&1 && ok "the dependent merge job succeeds" || { bad "the dependent merge job succeeds"; head -n 5 slurm-merge.log; }
  doc_check "Slurm recipe merged every item" slurm-doc/qa.jsonl

  mkdir -p loop
  cp doc-qa.jsonl loop/qa.jsonl
  (cd loop && sh ../doc-local-loop >../loop.log 2>&1) && ok "the one-machine loop succeeds" || { bad "the one-machine loop succeeds"; head -n 5 loop.log; }
  doc_check "one-machine loop merged every item" loop/qa.jsonl
fi

echo "$passed passed, $failed failed"
finish
