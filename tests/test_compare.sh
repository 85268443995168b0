#!/bin/sh
# End-to-end tests of `assay compare`: pairing by (id, trial), means and
# the paired 95% confidence interval against values computed by hand (see
# tests/data/report/a.jsonl and b.jsonl), items only in one file, the most
# regressed items, --json, the --fail-if-regressed gate and its exit codes,
# and errors naming the file and line. Needs ASSAY_BIN, ASSAY_TEST_SRCDIR
# (set by make check) and python3.
set -u
bin=${ASSAY_BIN:?}
src=${ASSAY_TEST_SRCDIR:?}
data=$src/data/report
work=$(mktemp -d "${TMPDIR:-/tmp}/assay-compare.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

. "$src/testlib.sh"
expect_out() {
  if grep -qE -- "$2" out; then ok "$1"; else bad "$1: stdout lacks /$2/"; sed 's/^/     | /' out | head -n 20; fi
}
# check NAME PYTHON: an assertion over j, the JSON on stdout of the last run.
check() {
  if python3 - >pyout 2>&1 <<EOF
import json
j = json.load(open("out"))
s = {x["name"]: x for x in j["scores"]}
def near(a, b, eps=1e-6):
    return a is not None and abs(a - b) <= eps
assert $2
EOF
  then ok "$1"; else bad "$1"; sed 's/^/     | /' pyout | tail -n 4; fi
}

cp "$data/a.jsonl" "$data/a.summary.json" "$data/b.jsonl" .

# ---- the table ---------------------------------------------------------------
# equals over the 4 pairs q1..q4: A 1,0,1,0  B 1,1,0,1  d 0,+1,-1,+1:
#   mean A 0.5, mean B 0.75, diff 0.25, sd(d) = sqrt(2.75/3) = 0.957427,
#   t(0.975, 3) = 3.182446, half width 3.182446 * 0.957427 / 2 = 1.523480.
# sim over the 3 pairs q1..q3 (q4 failed in A): A .9,.5,.8  B .7,.6,.4
#   d -.2,+.1,-.4: mean A 0.733333, B 0.566667, diff -0.166667,
#   sd(d) = sqrt(0.126667/2) = 0.251661, t(0.975, 2) = 4.302653,
#   half width 4.302653 * 0.251661 / sqrt(3) = 0.625161.
run "compare two runs" 0 compare a.jsonl b.jsonl
expect_out "both files named, A with its run" "^A: a.jsonl: run 'base' \(completed\), 8 records, 2 task errors$"
expect_out "B without a summary" "^B: b.jsonl, 7 records, 1 task error$"
expect_out "pair counts" "^pairs: 5 by \(id, trial\); only in A: 3; only in B: 2$"
expect_out "equals row" "^equals +4 +0\.5000 +0\.7500 +\+0\.2500 +\[-1\.2735, \+1\.7735\] +2 +1 +1$"
expect_out "sim row" "^sim +3 +0\.7333 +0\.5667 +-0\.1667 +\[-0\.7918, \+0\.4585\] +1 +2 +0$"
expect_out "the interval is named" "Student t, n-1 degrees of freedom"
expect_out "only in A, in file order, trial and id type kept" '^only in A \(3\): "q5"/0, "q7"/0, 7/0'
expect_out "only in B: the string \"7\" is not the number 7" '^only in B \(2\): "q6"/0, "7"/0'
expect_out "score failed on one side is said" "'sim' has a value on one side only for 1 paired item \(failed or missing in A: 1, in B: 0\)"
expect_out "most regressed with both outputs" '^  "q3" +0 +0\.8000 +0\.4000 +-0\.4000 +the sky is blue +the sky is green$'
if grep -q ' $' out; then bad "no trailing blanks"; else ok "no trailing blanks"; fi

# ---- JSON --------------------------------------------------------------------
run "compare --json" 0 compare a.jsonl b.jsonl --json
check "--json parses, pairs and sides" \
  "j['pairs'] == 5 and j['a']['records'] == 8 and j['b']['records'] == 7 and j['a']['name'] == 'base' and j['b']['summary_file'] is None"
check "means and differences by hand" \
  "near(s['equals']['mean_a'], 0.5) and near(s['equals']['mean_b'], 0.75) and near(s['equals']['diff'], 0.25) and near(s['sim']['mean_a'], 0.733333) and near(s['sim']['mean_b'], 0.566667) and near(s['sim']['diff'], -0.166667)"
check "95% CI by hand (t with 3 and 2 degrees of freedom)" \
  "near(s['equals']['t'], 3.182446) and near(s['equals']['ci_low'], -1.273480) and near(s['equals']['ci_high'], 1.773480) and near(s['sim']['t'], 4.302653) and near(s['sim']['ci_low'], -0.791828) and near(s['sim']['ci_high'], 0.458494)"
check "improved, regressed, unchanged" \
  "[s['equals'][k] for k in ('improved', 'regressed', 'unchanged')] == [2, 1, 1] and [s['sim'][k] for k in ('improved', 'regressed', 'unchanged')] == [1, 2, 0]"
check "failed on one side only" "s['sim']['failed_in_a_only'] == 1 and s['sim']['failed_in_b_only'] == 0"
check "means over all records, as the summaries have them" \
  "near(s['sim']['all_a']['mean'], 0.6) and s['sim']['all_a']['failures'] == 1 and near(s['sim']['all_b']['mean'], 0.58) and s['sim']['all_b']['count'] == 5"
check "items only in one file, listed with id type and trial" \
  "j['only_in_a'] == {'count': 3, 'items': [{'id': 'q5', 'trial': 0}, {'id': 'q7', 'trial': 0}, {'id': 7, 'trial': 0}]} and j['only_in_b'] == {'count': 2, 'items': [{'id': 'q6', 'trial': 0}, {'id': '7', 'trial': 0}]}"
check "most regressed, worst first, with outputs" \
  "[(x['id'], round(x['diff'], 6), x['output_a'], x['output_b']) for x in s['sim']['most_regressed']] == [('q3', -0.4, 'the sky is blue', 'the sky is green'), ('q1', -0.2, 'Paris', 'Paris')]"
run "--top 1" 0 compare a.jsonl b.jsonl --json --top 1
check "--top 1 keeps the worst" "[x['id'] for x in s['sim']['most_regressed']] == ['q3']"
run "--top 0" 0 compare a.jsonl b.jsonl --top 0
if grep -q "most regressed" out; then bad "--top 0 lists none"; else ok "--top 0 lists none"; fi

# ---- larger samples: the t quantile beyond the first degrees of freedom --------
for n in 10 30 100; do
  python3 - "$n" <<'EOF'
import json, sys
n = int(sys.argv[1])
def rec(i, v):
    return json.dumps({"index": i, "id": "i%d" % i, "trial": 0, "input": {}, "output": {"output": "o"},
                       "scores": {"s": {"value": v, "reason": None, "error": None}},
                       "error": None, "attempts": 1, "task_ms": 1, "metrics_ms": 0})
with open("n%d-a.jsonl" % n, "w") as a, open("n%d-b.jsonl" % n, "w") as b:
    for i in range(n):
        a.write(rec(i, 0.5) + "\n")
        b.write(rec(i, 0.5 + ((i * 37) % 11 - 5) / 20) + "\n")
EOF
done
# t(0.975, 9) = 2.262157, t(0.975, 29) = 2.045230, t(0.975, 99) = 1.984217.
for spec in 10:2.262157 30:2.045230 100:1.984217; do
  n=${spec%%:*} t=${spec#*:}
  run "compare $n pairs" 0 compare "n$n-a.jsonl" "n$n-b.jsonl" --json
  check "CI of $n pairs uses t = $t" "$(cat <<EOF
(lambda d, t: near(s['s']['t'], t) and near(s['s']['diff'], sum(d) / len(d)) and
  near(s['s']['ci_high'] - s['s']['diff'], t * (sum((x - sum(d) / len(d)) ** 2 for x in d) / (len(d) - 1)) ** 0.5 / len(d) ** 0.5))(
  [((i * 37) % 11 - 5) / 20 for i in range($n)], $t)
EOF
)"
done

# ---- the CI gate ----------------------------------------------------------------
run "gate passes within DELTA" 0 compare a.jsonl b.jsonl --fail-if-regressed sim:0.2
expect_out "passed gate reported" "^gate 'sim': ok, mean 0\.7333 -> 0\.5667"
run "gate fails beyond DELTA" 1 compare a.jsonl b.jsonl --fail-if-regressed sim:0.1
expect_err "failed gate says what dropped" "'sim' regressed: mean 0.7333 -> 0.5667 (-0.1667; --fail-if-regressed allows a drop of 0.1)"
run "gates repeat: one fails" 1 compare a.jsonl b.jsonl --fail-if-regressed equals:0 --fail-if-regressed sim:0.1
run "gates repeat: all pass" 0 compare a.jsonl b.jsonl --fail-if-regressed equals:0 --fail-if-regressed sim:0.5
run "an improvement never fails" 0 compare a.jsonl b.jsonl --fail-if-regressed equals:0
run "gate with --json" 1 compare a.jsonl b.jsonl --json --fail-if-regressed sim:0.1
check "gates in JSON" "j['gates'] == [{'score': 'sim', 'delta': 0.1, 'mean_a': j['gates'][0]['mean_a'], 'mean_b': j['gates'][0]['mean_b'], 'passed': False}] and near(j['gates'][0]['mean_a'], 0.733333)"
run "gate on an unknown score" 2 compare a.jsonl b.jsonl --fail-if-regressed nope:0.1
expect_err "unknown score named with the known ones" "score 'nope' is not in either file; scores compared: 'equals', 'sim'"
sed 's/,"sim":{[^}]*}//' b.jsonl >nosim.jsonl
run "gate on a score missing from B" 2 compare a.jsonl nosim.jsonl --fail-if-regressed sim:0.1
expect_err "missing score: the file named" "score 'sim' is not in 'nosim.jsonl'"
run "gate spec without DELTA" 2 compare a.jsonl b.jsonl --fail-if-regressed sim
expect_err "gate spec explained" "--fail-if-regressed expects SCORE:DELTA"
run "negative DELTA" 2 compare a.jsonl b.jsonl --fail-if-regressed sim:-1
run "score names may contain ':'" 2 compare a.jsonl b.jsonl --fail-if-regressed judge:v2:0.1
expect_err "last ':' splits" "score 'judge:v2' is not in either file"

# ---- usage and input errors ------------------------------------------------------
run "help" 0 compare --help
run "one file" 2 compare a.jsonl
expect_err "one file: says two are needed" "compare needs two records files"
run "three files" 2 compare a.jsonl b.jsonl a.jsonl
run "bad --top" 2 compare a.jsonl b.jsonl --top x
run "unknown option" 2 compare a.jsonl b.jsonl --frob
run "missing file" 2 compare a.jsonl nothere.jsonl
expect_err "missing file named as a records file" "cannot read records file 'nothere.jsonl': No such file or directory"
run "a directory for a records file" 2 compare a.jsonl .
expect_err "a directory: said so" "cannot read records file '.': Is a directory"
{ head -n 3 b.jsonl; echo 'not json'; tail -n 2 b.jsonl; } >broken.jsonl
run "malformed record" 2 compare a.jsonl broken.jsonl
expect_err "malformed record: file and line" "broken.jsonl:4:"
echo '{"index":0,"id":{"x":1},"input":{},"output":null,"scores":{}}' >badid.jsonl
run "record without a usable id" 2 compare badid.jsonl b.jsonl
expect_err "bad id: file and line" "badid.jsonl:1: record has no string or number 'id'"
printf '{"id":"q1","question":"?"}\n' >dataset.jsonl
run "a dataset for a records file" 2 compare a.jsonl dataset.jsonl
expect_err "a dataset: said so" "'dataset.jsonl' is not a records file of 'assay run': line 1 has no index, input and output"
{ cat b.jsonl; printf '{"index":9,"id":"q9","sco'; } >torn.jsonl
run "incomplete last line is skipped" 0 compare a.jsonl torn.jsonl --json
expect_err "incomplete last line: warned" "incomplete last line"
check "incomplete last line: not counted" "j['b']['records'] == 7"
{ cat a.jsonl; head -n 1 a.jsonl; } >dup.jsonl
run "repeated (id, trial)" 0 compare dup.jsonl b.jsonl --json
expect_err "repeated id warned with both lines" 'dup.jsonl:9: id "q1" trial 0 repeats line 1'
check "repeated id: counted, first one paired" "j['duplicates']['a'] == 1 and j['pairs'] == 5"

# ---- many records: bounded work, still exact -----------------------------------------
python3 - <<'EOF'
import json
with open("big-a.jsonl", "w") as a, open("big-b.jsonl", "w") as b:
    for i in range(100000):
        r = {"index": i, "id": "item-%d" % i, "trial": 0, "input": {"q": i}, "output": {"output": "x"},
             "scores": {"s": {"value": (i % 10) / 10, "reason": None, "error": None}},
             "error": None, "attempts": 1, "task_ms": 1, "metrics_ms": 0}
        a.write(json.dumps(r) + "\n")
        if i % 100 == 5:
            r["scores"]["s"]["value"] = 0
        b.write(json.dumps(r) + "\n")
EOF
run "100,000 pairs" 0 compare big-a.jsonl big-b.jsonl --json
check "100,000 pairs: counts" "j['pairs'] == 100000 and s['s']['regressed'] == 1000 and s['s']['unchanged'] == 99000 and near(s['s']['diff'], -0.005) and near(s['s']['t'], 1.959988, 1e-5)"

echo "compare: $passed passed, $failed failed"
finish
