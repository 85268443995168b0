#!/bin/sh
# End-to-end tests of `assay report`: the HTML file it writes (one
# self-contained page, records embedded as JSON, everything escaped), its
# errors, and the page as a browser renders it. When Debian's chromium is
# installed (/usr/bin/chromium, or $CHROMIUM), the page is rendered headless
# and its DOM checked (counts, means, errors, escaping, pagination of
# 100,000 records); screenshots are kept in tests/out/ of the build tree.
# Without chromium the browser part prints SKIP and the static checks run.
# Needs ASSAY_BIN, ASSAY_TEST_SRCDIR and ASSAY_TEST_BUILDDIR (set by make
# check) and python3.
set -u
bin=${ASSAY_BIN:?}
src=${ASSAY_TEST_SRCDIR:?}
build=${ASSAY_TEST_BUILDDIR:?}
data=$src/data/report
artifacts=$build/out
mkdir -p "$artifacts"
work=$(mktemp -d "${TMPDIR:-/tmp}/assay-report.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
skipped=0

. "$src/testlib.sh"

# page NAME HTML PYTHON: a Python assertion over the page's text (html), its
# embedded data (d, parsed from the JSON script) and the raw data text (raw).
page() {
  if python3 - "$2" >pyout 2>&1 <<EOF
import json, re, sys
html = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r'<script type="application/json" id="assay-data">(.*?)</script>', html, re.S)
raw = m.group(1)
d = json.loads(raw)
assert $3
EOF
  then ok "$1"; else bad "$1"; sed 's/^/     | /' pyout | tail -n 4; fi
}

cp "$data/a.jsonl" "$data/a.summary.json" "$data/b.jsonl" "$data/inject.jsonl" \
   "$data/inject.summary.json" .

# ---- the page as written ---------------------------------------------------
run "report one file" 0 report a.jsonl -o a.html
expect_err "report names the file written" "report: a.html (8 records)"
run "report -q" 0 report a.jsonl -o aq.html -q
[ ! -s err ] && [ -s aq.html ] && ok "... writes the page and says nothing" || bad "... writes the page and says nothing: $(head -n 2 err)"
page "one data script, one code script, nothing external" a.html \
  "html.count('<script') == 2 and html.count('</script>') == 2 and '<link' not in html and not re.search(r'<[a-z]+[^>]* (src|href)=', html)"
page "data embeds every record" a.html "len(d['runs']) == 1 and len(d['runs'][0]['records']) == 8"
page "data carries the summary file's run" a.html \
  "d['runs'][0]['summary']['name'] == 'base' and d['runs'][0]['summary_file'] == 'a.summary.json' and d['runs'][0]['summary']['fingerprint'] == '5be0a1f3c2d4e697'"
page "statistics are recomputed from the records" a.html \
  "abs(d['runs'][0]['summary']['scores']['equals']['mean'] - 0.6) < 1e-12 and d['runs'][0]['summary']['counts']['failed'] == 2 and d['runs'][0]['scores'] == ['equals', 'sim']"
page "a record keeps input, output, error and score error" a.html \
  "[r for r in d['runs'][0]['records'] if r[1] == 'q7' and r[2] == 1][0][3:5] == ['timeout', \"task 'openai_chat' timed out after 60000 ms (after 4 attempts)\"] and d['runs'][0]['records'][3][8][1][2].startswith('missing_input:') and d['runs'][0]['records'][2][10] == {'output': 'the sky is blue'}"

mkdir -p rdir
run "a directory as the page" 2 report a.jsonl -o rdir
expect_err "... refused, naming a file to give" "the report's path (-o) 'rdir' is a directory: name a file in it, as 'rdir/report.html'"

: >none.jsonl
run "a records file with no records" 0 report a.jsonl none.jsonl -o none.html -q
expect_err "... is warned of, even with -q" "warning: 'none.jsonl' holds no records"
[ "$(grep -c 'holds no records' err)" -eq 1 ] && ok "... and only it" || bad "... and only it"

cp a.jsonl run.jsonl
run "default output beside the records" 0 report run.jsonl
[ -s run.html ] && ok "run.jsonl gives run.html" || bad "run.jsonl gives run.html"
page "no summary beside: computed from the records" run.html \
  "d['runs'][0]['summary_file'] is None and d['runs'][0]['summary']['counts']['items'] == 8"

run "report two files" 0 report a.jsonl b.jsonl -o ab.html
page "two runs embedded" ab.html "[len(r['records']) for r in d['runs']] == [8, 7]"

# ---- escaping ----------------------------------------------------------------
run "report of hostile records" 0 report inject.jsonl -o inject.html
page "records cannot close or open a script element" inject.html \
  "html.count('<script') == 2 and html.count('</script>') == 2 and '<' not in raw"
page "no markup from the records reaches the page source" inject.html \
  "'<img' not in html and '<b>x2' not in html and '<!-- not' not in html"
page "the title is HTML-escaped" inject.html \
  "'<title>assay report: &lt;/title&gt;&lt;script&gt;' in html"
page "escaped data parses back to the exact text" inject.html \
  "d['runs'][0]['records'][0][10]['output'].startswith('</script><script>alert(1)</script> <img src=x onerror=')"

# ---- long texts --------------------------------------------------------------
python3 - <<'EOF'
import json
with open("long.jsonl", "w") as f:
    f.write(json.dumps({"index": 0, "id": "l", "trial": 0, "input": {"input": "x"},
                        "output": {"output": "\u00e9" * 30000}, "scores": {},
                        "error": None, "attempts": 1, "task_ms": 1, "metrics_ms": 0}) + "\n")
EOF
run "long output" 0 report long.jsonl -o long.html --max-text 1001
page "long strings are shortened on a character boundary" long.html \
  "d['runs'][0]['records'][0][10]['output'].startswith('\u00e9' * 500 + '\u2026 [shortened for the report: 60000 bytes') and d['runs'][0]['truncated'] == 1"
run "--max-text 0 keeps everything" 0 report long.jsonl -o long0.html --max-text 0
page "nothing shortened" long0.html "d['runs'][0]['records'][0][10]['output'] == '\u00e9' * 30000"

# ---- errors ------------------------------------------------------------------
run "no file" 2 report
expect_err "no file: says what is needed" "report needs a records file"
run "help" 0 report --help
grep -q -- "--max-text" out && ok "help lists options" || bad "help lists options"
run "unknown option" 2 report a.jsonl --frobnicate
expect_err "unknown option named" "unknown option '--frobnicate'"
run "three files" 2 report a.jsonl b.jsonl a.jsonl
run "missing file" 2 report nothere.jsonl
expect_err "missing file named" "cannot read records 'nothere.jsonl'"
run "report over its own records" 2 report a.jsonl -o a.jsonl
expect_err "overwrite refused" "would overwrite the records it reads"
cmp -s a.jsonl "$data/a.jsonl" && ok "records untouched" || bad "records untouched"
cp a.summary.json a-sum.keep
run "-o into a directory not there yet" 0 report a.jsonl -o pages/new/a.html
[ -s pages/new/a.html ] && ok "... makes it" || bad "... makes it"
run "report over the summary it reads" 2 report a.jsonl -o ./a.summary.json
expect_err "... refused" "the report './a.summary.json' would overwrite the summary it reads"
cmp -s a.summary.json a-sum.keep && ok "... summary untouched" || bad "... summary untouched"
{ head -n 2 a.jsonl; echo '{"index": 2, "id": "q3", oops'; tail -n 3 a.jsonl; } >broken.jsonl
run "malformed record" 2 report broken.jsonl -o broken.html
expect_err "malformed record: file and line" "broken.jsonl:3:"
[ ! -e broken.html ] && ok "no page left after a failure" || bad "no page left after a failure"
ls -a | grep -q "^\.broken\.html\..*\.tmp$" && bad "temporary file removed" || ok "temporary file removed"
echo '{"index": 0, "id": ["q"], "input": {}, "output": null, "scores": {}}' >noid.jsonl
run "record without id" 2 report noid.jsonl -o noid.html
expect_err "record without id: file and line" "noid.jsonl:1: record has no string or number 'id'"
printf '{"id": "q1", "question": "?"}\n' >dataset.jsonl
run "a dataset for a records file" 2 report dataset.jsonl -o dataset.html
expect_err "a dataset: said so" "'dataset.jsonl' is not a records file of 'assay run': line 1 has no index, input and output"
[ ! -e dataset.html ] && ok "a dataset: no page written" || bad "a dataset: no page written"
{ cat a.jsonl; printf '{"index": 8, "id": "q9", "tri'; } >torn.jsonl
run "incomplete last line" 0 report torn.jsonl -o torn.html
expect_err "incomplete last line: warned" "incomplete last line"
page "incomplete last line: skipped and said" torn.html \
  "len(d['runs'][0]['records']) == 8 and d['runs'][0]['skipped_lines'] == 1"

# ---- 100,000 records -----------------------------------------------------------
python3 - <<'EOF'
import json
with open("big.jsonl", "w") as f:
    for i in range(100000):
        err = {"code": "timeout", "message": "timed out %d" % i} if i % 1000 == 7 else None
        sc = {} if err else {"equals": {"value": i % 2, "reason": None, "error": None},
                             "ratio": {"value": (i % 97) / 96, "reason": None, "error": None}}
        f.write(json.dumps({"index": i, "id": "item-%d" % i, "trial": 0,
                            "input": {"input": "question %d" % i},
                            "output": None if err else {"output": "answer %d" % i},
                            "scores": sc, "error": err, "attempts": 1,
                            "task_ms": 5 + (i * 7919) % 2000, "metrics_ms": 0.1},
                           separators=(",", ":")) + "\n")
EOF
run "report of 100,000 records" 0 report big.jsonl -o big.html
page "100,000 records embedded" big.html "len(d['runs'][0]['records']) == 100000 and d['runs'][0]['summary']['counts']['failed'] == 100"
size=$(wc -c <big.html)
big_in=$(wc -c <big.jsonl)
# The compact form keeps the page smaller than the records it shows.
[ "$size" -lt "$big_in" ] && ok "page ($size bytes) smaller than the records ($big_in)" || bad "page ($size bytes) smaller than the records ($big_in)"

# ---- in a browser ----------------------------------------------------------------
chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  skipped=1
  echo "SKIP browser checks: $chromium not found (install Debian's chromium to render the report)"
else
  # dom NAME HTML [#HASH]: the DOM after the page's script ran, in NAME.dom.
  dom() {
    prof=$(mktemp -d "$work/chrome.XXXXXX")
    timeout 180 "$chromium" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
      --no-first-run --disable-background-networking --disable-component-update \
      --disable-sync --user-data-dir="$prof" --dump-dom "file://$work/$2${3:-}" \
      >"$1.dom" 2>"$1.chrome.err"
  }
  shot() {
    prof=$(mktemp -d "$work/chrome.XXXXXX")
    timeout 180 "$chromium" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
      --no-first-run --disable-background-networking --disable-component-update \
      --disable-sync --user-data-dir="$prof" --hide-scrollbars \
      --screenshot="$artifacts/$1" --window-size=1280,2000 "file://$work/$2" \
      >/dev/null 2>"$1.chrome.err"
    if [ -s "$artifacts/$1" ] && [ "$(wc -c <"$artifacts/$1")" -gt 20000 ]; then
      ok "screenshot kept: tests/out/$1"
    else
      bad "screenshot tests/out/$1"
    fi
  }
  # domcheck NAME FILE PYTHON: an assertion over the DOM text (dom) with a
  # helper text(id) giving an element's text by id.
  domcheck() {
    if python3 - "$2" >pyout 2>&1 <<EOF
import re, sys
dom = open(sys.argv[1], encoding="utf-8").read()
def text(i):
    m = re.search(r'id="%s"[^>]*>([^<]*)<' % re.escape(i), dom)
    return m.group(1) if m else None
def cell(cls, score, run=None):
    pat = r'<td class="n %s" data-score="%s"%s>([^<]*)<' % (cls, re.escape(score), ' data-run="%d"' % run if run is not None else '')
    m = re.search(pat, dom)
    return m.group(1) if m else None
assert $3
EOF
    then ok "$1"; else bad "$1"; sed 's/^/     | /' pyout | tail -n 4; fi
  }

  dom a a.html
  domcheck "page script ran" a.dom "'data-ready=\"1\"' in dom"
  domcheck "record count shown" a.dom "text('items-0') == '8' and text('failed-0') == '2' and text('score-failures-0') == '1'"
  domcheck "mean of a score shown" a.dom "cell('mean', 'equals', 0) == '0.6000' and cell('mean', 'sim', 0) == '0.6000' and cell('failures', 'sim', 0) == '1'"
  domcheck "run name and status from the summary" a.dom "text('name-0') == 'base' and text('status-0') == 'completed'"
  domcheck "failures listed first, with the error message" a.dom \
    "dom.index('id=\"failures\"') < dom.index('id=\"scores\"') and 'timeout: task \\'openai_chat\\' timed out after 60000 ms (after 4 attempts)' in dom"
  domcheck "a failed score's error listed" a.dom "'sim: missing_input: metric' in dom"
  domcheck "one histogram and one scatter plot per score" a.dom \
    "dom.count('<svg class=\"hist\"') == 2 and dom.count('<canvas class=\"scatter\"') == 2"
  domcheck "table: every record, failures first" a.dom \
    "dom.count('<tr class=\"row') == 8 and re.findall(r'data-row=\"(\\d+)\"', dom)[:3] == ['3', '5', '6'] and text('page-info') == 'page 1 of 1'"

  dom open a.html "#id=q4"
  domcheck "an item opens on demand: input, output, scores, errors" open.dom \
    "dom.count('class=\"detail\"') == 1 and '\"input\": \"question q4\"' in dom and '\"output\": \"maple\"' in dom and 'missing_input: metric \\'sim\\' reads' in dom"

  dom inject inject.html
  domcheck "hostile page: script ran, nothing injected" inject.dom \
    "'data-ready=\"1\"' in dom and 'data-pwned' not in dom.replace('&#39;data-pwned&#39;', '').replace(\"'data-pwned'\", '')"
  domcheck "hostile page: no element made from the records" inject.dom \
    "'<img' not in dom and '<b>x2' not in dom"
  domcheck "hostile page: the injection shows as text" inject.dom \
    "'&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=' in dom and '&lt;b&gt;x2&lt;/b&gt;' in dom and 'HTTP 400: &lt;img src=x onerror=' in dom"
  domcheck "hostile page: the title shows as text" inject.dom \
    "'<title>assay report: &lt;/title&gt;&lt;script&gt;document.body' in dom"
  dom injopen inject.html "#id=x1"
  domcheck "hostile item opened: reason and input as text" injopen.dom \
    "dom.count('class=\"detail\"') == 1 and 'data-pwned' not in dom.replace('&#39;data-pwned&#39;', '').replace(\"'data-pwned'\", '') and 'reason &lt;img src=x' in dom and 'say &lt;/script&gt;&lt;script&gt;alert(1)' in dom and '<img' not in dom"

  dom ab ab.html
  domcheck "side by side: both summaries" ab.dom "text('items-0') == '8' and text('items-1') == '7' and text('name-0') == 'base'"
  domcheck "side by side: score deltas" ab.dom \
    "re.search(r'class=\"n delta down\" data-score=\"sim\">-0.0200<', dom) and cell('mean', 'sim', 1) == '0.5800'"
  domcheck "side by side: paired counts per score" ab.dom \
    "cell('pairs', 'sim') == '3' and cell('improved', 'sim') == '1' and cell('regressed', 'sim') == '2' and cell('unchanged', 'equals') == '1' and cell('improved', 'equals') == '2'"
  domcheck "side by side: rows paired by (id, trial)" ab.dom \
    "dom.count('<tr class=\"row') == 10 and 'rows 1\u201310 of 10 pairs' in dom"
  dom abopen ab.html "#id=q3"
  domcheck "side by side: an opened pair shows both outputs" abopen.dom \
    "'the sky is blue' in dom and 'the sky is green' in dom and dom.count('class=\"side\"') == 2"

  dom big big.html
  domcheck "100,000 records: counted" big.dom "text('items-0') == '100000' and text('failed-0') == '100'"
  domcheck "100,000 records: paginated, 100 rows a page" big.dom \
    "dom.count('<tr class=\"row') == 100 and text('page-info') == 'page 1 of 1000' and 'next \u203a</button>' in dom"
  domcheck "100,000 records: failures first" big.dom "'timed out 7<' in dom or 'timed out 7' in dom"

  shot report.png a.html
  shot report-compare.png ab.html
  shot report-big.png big.html
fi

[ "$skipped" -eq 1 ] && note=", browser checks skipped" || note=""
echo "report: $passed passed, $failed failed$note"
finish
