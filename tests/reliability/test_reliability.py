#!/usr/bin/env python3
"""The "never lose a result" tests of the assay binary (issue 4).

Everything goes through the real binary, as a user runs it: real plugins
(built-in ones and the fixtures in tests/fixtures), real files, the
project's mock LLM server. Groups (all by default, or those named on the
command line):

  kill      kill -9 at 20 seeded random moments, --resume each time: the
            final records equal an uninterrupted run's
  resume    torn last line, another dataset / metric / option refused,
            existing output refused without --overwrite
  signals   SIGINT/SIGTERM and --grace, abandoned items, a second signal
  plugins   misbehaving fixture plugins, and one that crashes the process
  faults    10,000 items against injected 429s, 500s and hangs
  security  API keys in no output, file modes under umask 000, no plugin
            from the current directory
  limits    item size, response size, invalid UTF-8, option values

docs/reliability.md says which guarantee each check stands for. Prints one
line per check, then "N passed, M failed"; exits 1 on any failure. Set
ASSAY_TEST_KEEP=1 to keep the work directory, ASSAY_TEST_SERIAL=1 to run the
groups one after another rather than at once, ASSAY_TEST_WRAP to run every
assay command under a wrapper such as valgrind (the plugins, resume,
security and limits groups suit it; the others time signals and kills).
"""
import json
import os
import random
import resource
import shutil
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import http.server

BIN = os.environ["ASSAY_BIN"]
# ASSAY_TEST_WRAP prefixes every assay command, e.g. "valgrind -q
# --error-exitcode=99 --leak-check=full" (as in tests/test_docs.sh).
WRAP = shlex.split(os.environ.get("ASSAY_TEST_WRAP", ""))
BUILD = os.environ["ASSAY_TEST_BUILDDIR"]
FX = os.path.join(BUILD, "fixtures")
MOCK = os.path.join(BUILD, "mockllm")
# A hang of the binary must fail the test, never stall make check.
LIMIT_S = 120

passed = 0
failed = 0


def ok(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   " + name, flush=True)
    else:
        failed += 1
        print("FAIL " + name, flush=True)
        for line in str(detail).splitlines()[:12]:
            print("     | " + line[:300], flush=True)
    return cond


def child_setup():
    # No core files from the crash tests.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def env_with(**extra):
    env = dict(os.environ)
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    env.setdefault("ASSAY_PLUGIN_PATH", "")
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def run(args, cwd, env=None, umask=None, timeout=LIMIT_S):
    """Runs assay ARGS to completion; returns (status, stdout, stderr)."""
    def setup():
        child_setup()
        if umask is not None:
            os.umask(umask)
    try:
        p = subprocess.run(WRAP + [BIN] + args, cwd=cwd, env=env or env_with(),
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, errors="replace", timeout=timeout,
                           preexec_fn=setup)
    except subprocess.TimeoutExpired as e:
        return None, e.stdout or "", "timed out after %d s" % timeout
    return p.returncode, p.stdout, p.stderr


def start(args, cwd, env=None):
    return subprocess.Popen(WRAP + [BIN] + args, cwd=cwd, env=env or env_with(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            errors="replace", preexec_fn=child_setup)


def finish(p, timeout=LIMIT_S):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return None, out, err + "\n(killed: still running after %d s)" % timeout
    return p.returncode, out, err


def read_records(path):
    """The complete records of a file: (records, error). Every line must
    end with a newline and parse as a JSON object."""
    recs = []
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return None, str(e)
    if data and not data.endswith(b"\n"):
        return None, "last line is torn: %r" % data[-80:]
    for n, line in enumerate(data.split(b"\n")[:-1], 1):
        try:
            r = json.loads(line)
        except ValueError as e:
            return None, "line %d does not parse: %s" % (n, e)
        if not isinstance(r, dict):
            return None, "line %d is not an object" % n
        recs.append(r)
    return recs, None


def complete_lines(path):
    """Records of the complete lines only (a torn tail is ignored)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    return [json.loads(l) for l in data.split(b"\n")[:-1]]


def file_size(path):
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def wait_growth(path, size, p, limit=10.0):
    """Wait until the file is longer than size, the process has ended,
    or limit seconds have passed."""
    end = time.monotonic() + limit
    while (file_size(path) <= size and p.poll() is None and
           time.monotonic() < end):
        time.sleep(0.002)


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return {"_error": str(e)}


TIMING = ("task_ms", "metrics_ms")


def strip(r):
    return {k: v for k, v in r.items() if k not in TIMING}


def first_diff(a, b):
    """Where two record lists differ, for a failure message."""
    for i, (x, y) in enumerate(zip(a, b)):
        if strip(x) != strip(y):
            return "record %d:\n got      %s\n expected %s" % (
                i, json.dumps(strip(x))[:300], json.dumps(strip(y))[:300])
    return "lengths %d and %d" % (len(a), len(b))


def same_records(got, want):
    return got is not None and len(got) == len(want) and all(
        strip(x) == strip(y) for x, y in zip(got, want))


def write_jsonl(path, items):
    with open(path, "w") as f:
        for it in items:
            f.write(json.dumps(it) + "\n")


def wait_for(cond, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def line_count(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def summary_running(path):
    s = load_json(path)
    return s.get("status") == "running"


# ---- data shared by several groups --------------------------------------------

def qa_items(n, upper=False):
    # Every third reference differs, so the metric has both values.
    items = []
    for i in range(n):
        text = "text %d" % i
        items.append({"id": "q%d" % i,
                      "input": text.upper() if upper else text,
                      "reference": text if i % 3 else "other"})
    return items


DELAY_RUN = ["--task", "delay", "--opt", "ms=60", "--opt", "jitter_ms=40",
             "--metric", "equals", "--concurrency", "50", "-q"]


def reference_run(work):
    """The uninterrupted run every interrupted one is compared with."""
    ds = os.path.join(work, "qa.jsonl")
    write_jsonl(ds, qa_items(2000))
    st, _, err = run(["run", "--dataset", "qa.jsonl", "-o", "ref.jsonl"] +
                     DELAY_RUN, work)
    recs, why = read_records(os.path.join(work, "ref.jsonl"))
    ok("reference run completes (exit 0, 2000 records)",
       st == 0 and recs is not None and len(recs) == 2000, (st, err, why))
    return recs or []


# ---- kill -9 and --resume -----------------------------------------------------

def test_kill(work, ref):
    rng = random.Random(20261127)  # fixed: a failure reproduces
    out = os.path.join(work, "killed.jsonl")
    args = ["run", "--dataset", "qa.jsonl", "-o", "killed.jsonl",
            "--resume"] + DELAY_RUN
    kills = mid = 0
    prev = 0
    kept = True
    lost = ""
    attempts = 0
    while kills < 20 and attempts < 40:
        attempts += 1
        size0 = file_size(out)
        p = start(args, work)
        if attempts % 2 == 0:
            # Every other kill comes once this run has written: a slow
            # start (a sanitizer, a loaded machine) must not turn all of
            # them into kills before the first record.
            wait_growth(out, size0, p)
            time.sleep(rng.uniform(0.0, 0.1))
        else:
            time.sleep(rng.uniform(0.0, 0.2))
        p.kill()
        st, _, err = finish(p)
        if st == 0:
            break  # the run finished before the kill: nothing left to kill
        if st != -signal.SIGKILL:
            lost = "run %d ended with status %s before the kill: %s" % (
                attempts, st, err[-300:])
            kept = False
            break
        kills += 1
        recs = complete_lines(out)
        if 0 < len(recs) < 2000:
            mid += 1
        # Whatever was written must still be there and be the reference's
        # prefix: nothing lost, nothing duplicated, nothing reordered.
        if len(recs) < prev or not same_records(recs, ref[:len(recs)]):
            kept = False
            lost = "after kill %d: %d records (had %d): %s" % (
                kills, len(recs), prev, first_diff(recs, ref[:len(recs)]))
            break
        prev = len(recs)
    ok("20 kill -9 at random moments (%d of them mid-run)" % mid,
       kills == 20 and mid >= 10, (kills, mid, prev, lost))
    ok("every record written survives each kill -9 as a prefix of the "
       "reference", kept, lost)
    st, _, err = run(args, work)
    recs, why = read_records(out)
    ok("a last --resume finishes the run (exit 0)", st == 0, (st, err))
    ok("the final records equal the uninterrupted run's (none missing, "
       "none duplicated, in order)",
       recs is not None and same_records(recs, ref),
       why or first_diff(recs, ref))
    s = load_json(os.path.join(work, "killed.summary.json"))
    c = s.get("counts", {})
    sc = s.get("scores", {}).get("equals", {})
    ok("the resumed summary covers all 2000 items",
       s.get("status") == "completed" and c.get("items") == 2000 and
       c.get("ok") == 2000 and sc.get("count") == 2000 and
       abs(sc.get("mean", -1) - sum(
           r["scores"]["equals"]["value"] for r in ref) / 2000) < 1e-9,
       json.dumps({k: s.get(k) for k in ("status", "counts", "scores")}))


# ---- resume: torn lines, mismatches, overwrite ------------------------------

def copy_run(work, name, lines, cut=None):
    """A records file holding the reference's first lines (and a torn
    part of the next when cut is given), with the reference's summary."""
    with open(os.path.join(work, "ref.jsonl"), "rb") as f:
        data = f.read().split(b"\n")
    body = b"\n".join(data[:lines]) + b"\n"
    if cut is not None:
        body += data[lines][:cut]
    with open(os.path.join(work, name + ".jsonl"), "wb") as f:
        f.write(body)
    shutil.copy(os.path.join(work, "ref.summary.json"),
                os.path.join(work, name + ".summary.json"))
    return body


def file_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def test_resume(work, ref):
    body = copy_run(work, "torn", 700, cut=123)
    st, _, err = run(["run", "--dataset", "qa.jsonl", "-o", "torn.jsonl",
                      "--resume"] + DELAY_RUN, work)
    recs, why = read_records(os.path.join(work, "torn.jsonl"))
    ok("--resume drops a torn last line and completes the run (exit 0)",
       st == 0 and recs is not None and same_records(recs, ref),
       (st, err, why or first_diff(recs, ref)))
    s = load_json(os.path.join(work, "torn.summary.json"))
    ok("the resumed summary counts the 700 kept records and the rest",
       s.get("resumed_from") == 700 and s.get("counts", {}).get("items") ==
       2000 and s.get("engine", {}).get("calls") == 2 * 1300,
       json.dumps({k: s.get(k) for k in ("resumed_from", "counts", "engine")})[:400])

    # Resuming a finished run runs nothing and changes nothing.
    before = file_bytes(os.path.join(work, "torn.jsonl"))
    st, _, err = run(["run", "--dataset", "qa.jsonl", "-o", "torn.jsonl",
                      "--resume"] + DELAY_RUN, work)
    s = load_json(os.path.join(work, "torn.summary.json"))
    ok("--resume of a finished run runs nothing and keeps the records",
       st == 0 and file_bytes(os.path.join(work, "torn.jsonl")) == before and
       s.get("engine", {}).get("calls") == 0 and
       s.get("counts", {}).get("items") == 2000, (st, err))

    # Another dataset: the same length, other inputs.
    write_jsonl(os.path.join(work, "qa_upper.jsonl"), qa_items(2000, True))
    body = copy_run(work, "otherds", 5)
    st, _, err = run(["run", "--dataset", "qa_upper.jsonl", "-o",
                      "otherds.jsonl", "--resume"] + DELAY_RUN, work)
    ok("records of another dataset are refused with exit 2", st == 2,
       (st, err))
    ok("... with a message naming the file and what to do",
       "cannot resume" in err and "otherds.jsonl" in err and
       "--overwrite" in err, err)
    ok("... and the records file is left as it was",
       file_bytes(os.path.join(work, "otherds.jsonl")) == body)

    # A shorter dataset than the records.
    write_jsonl(os.path.join(work, "qa_short.jsonl"), qa_items(3))
    copy_run(work, "shortds", 5)
    st, _, err = run(["run", "--dataset", "qa_short.jsonl", "-o",
                      "shortds.jsonl", "--resume"] + DELAY_RUN, work)
    ok("records beyond the end of the dataset are refused with exit 2",
       st == 2 and "5" in err, (st, err))

    for label, args in (
            ("another metric", ["--task", "delay", "--opt", "ms=60", "--opt",
                                "jitter_ms=40", "--metric", "contains"]),
            ("another task option", ["--task", "delay", "--opt", "ms=61",
                                     "--opt", "jitter_ms=40", "--metric",
                                     "equals"]),
            ("another metric option", ["--task", "delay", "--opt", "ms=60",
                                       "--opt", "jitter_ms=40", "--metric",
                                       "equals", "--opt",
                                       "case_sensitive=true"])):
        body = copy_run(work, "othercfg", 5)
        st, _, err = run(["run", "--dataset", "qa.jsonl", "-o",
                          "othercfg.jsonl", "--resume", "--concurrency",
                          "50", "-q"] + args, work)
        ok("records made with %s are refused with exit 2 and a clear "
           "message" % label,
           st == 2 and "cannot resume" in err and "--overwrite" in err,
           (st, err))
        ok("... and the records file is left as it was (%s)" % label,
           file_bytes(os.path.join(work, "othercfg.jsonl")) == body)

    # Without the summary the configuration cannot be checked: the resume
    # goes on (the items are still checked) and says so.
    copy_run(work, "nosum", 5)
    os.unlink(os.path.join(work, "nosum.summary.json"))
    st, _, err = run(["run", "--dataset", "qa.jsonl", "-o", "nosum.jsonl",
                      "--resume"] + DELAY_RUN, work)
    recs, why = read_records(os.path.join(work, "nosum.jsonl"))
    ok("--resume without the summary completes the run (exit 0)",
       st == 0 and same_records(recs, ref), (st, err, why))
    ok("... and warns that the configuration could not be checked",
       "warning: no summary" in err and "nosum.summary.json" in err and
       "cannot be checked" in err and "--summary" in err, err)

    # Execution settings are not part of what records mean: resuming with
    # another concurrency or timeout is fine.
    copy_run(work, "otherexec", 5)
    st, _, err = run(["run", "--dataset", "qa.jsonl", "-o", "otherexec.jsonl",
                      "--resume", "--concurrency", "200", "--timeout",
                      "30000"] + DELAY_RUN[:-3] + ["-q"], work)
    recs, why = read_records(os.path.join(work, "otherexec.jsonl"))
    ok("--resume with another concurrency and timeout is accepted",
       st == 0 and same_records(recs, ref), (st, err, why))

    # A broken line that is not the last is not a crash's torn tail.
    copy_run(work, "corrupt", 10)
    path = os.path.join(work, "corrupt.jsonl")
    lines = file_bytes(path).split(b"\n")
    lines[4] = b'{"index": 4, garbage'
    with open(path, "wb") as f:
        f.write(b"\n".join(lines))
    before = file_bytes(path)
    st, _, err = run(["run", "--dataset", "qa.jsonl", "-o", "corrupt.jsonl",
                      "--resume"] + DELAY_RUN, work)
    ok("a corrupt line before the end is refused with exit 2, naming it",
       st == 2 and "line 5" in err and file_bytes(path) == before, (st, err))

    # Without --resume an existing output is never touched.
    copy_run(work, "exists", 5)
    before = file_bytes(os.path.join(work, "exists.jsonl"))
    st, _, err = run(["run", "--dataset", "qa.jsonl", "-o", "exists.jsonl"] +
                     DELAY_RUN, work)
    ok("an existing output is refused without --resume or --overwrite "
       "(exit 2)", st == 2 and "already exists" in err and "--overwrite" in
       err, (st, err))
    ok("... and left as it was",
       file_bytes(os.path.join(work, "exists.jsonl")) == before)
    st, _, err = run(["run", "--dataset", "qa.jsonl", "-o", "exists.jsonl",
                      "--overwrite"] + DELAY_RUN, work)
    recs, why = read_records(os.path.join(work, "exists.jsonl"))
    ok("--overwrite replaces it", st == 0 and same_records(recs, ref),
       (st, err, why))


# ---- signals and --grace ------------------------------------------------------

def test_signals(work, ref):
    # A first SIGINT mid-run: stop admitting, let in-flight items finish.
    p = start(["run", "--dataset", "qa.jsonl", "-o", "int.jsonl"] + DELAY_RUN,
              work)
    started = wait_for(lambda: line_count(os.path.join(work, "int.jsonl"))
                       >= 300, 30)
    p.send_signal(signal.SIGINT)
    st, _, err = finish(p)
    recs, why = read_records(os.path.join(work, "int.jsonl"))
    s = load_json(os.path.join(work, "int.summary.json"))
    ok("SIGINT mid-run exits 130", started and st == 130, (started, st, err))
    ok("... the summary says interrupted and counts what was written",
       s.get("status") == "interrupted" and recs is not None and
       s.get("counts", {}).get("items") == len(recs), s.get("status"))
    ok("... the records are valid JSONL, in order, a prefix of the full "
       "run, and stop short of it",
       recs is not None and 300 <= len(recs) < 2000 and
       same_records(recs, ref[:len(recs)]),
       why or first_diff(recs, ref[:len(recs or [])]))
    ok("... in-flight items finished within the default grace",
       s.get("engine", {}).get("abandoned") == 0, s.get("engine"))

    # In-flight calls finish within --grace; nothing new starts. fx_async
    # reports how many calls had started when each completed.
    items = [{"id": "g%d" % i, "input": "v%d" % i, "ms": 2000}
             for i in range(20)]
    write_jsonl(os.path.join(work, "grace.jsonl"), items)
    p = start(["run", "--dataset", "grace.jsonl", "--task",
               FX + "/fx_async.la", "--concurrency", "10", "--grace",
               "20000", "-o", "grace.out.jsonl", "-q"], work)
    up = wait_for(lambda: summary_running(
        os.path.join(work, "grace.out.summary.json")), 30)
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    st, _, err = finish(p)
    recs, why = read_records(os.path.join(work, "grace.out.jsonl"))
    s = load_json(os.path.join(work, "grace.out.summary.json"))
    ok("SIGTERM during slow calls exits 130 once they finish within "
       "--grace", up and st == 130, (up, st, err))
    ok("... all 10 in-flight items are written, none admitted after the "
       "signal",
       recs is not None and [r["index"] for r in recs] == list(range(10)) and
       all(r["error"] is None and r["output"]["output"] == "v%d" % r["index"]
           and r["output"]["started"] == 10 for r in recs),
       why or json.dumps(recs)[:400])
    ok("... summary: interrupted, nothing abandoned",
       s.get("status") == "interrupted" and
       s.get("engine", {}).get("abandoned") == 0, s.get("engine"))

    # A short --grace abandons long calls: they are not written, and
    # --resume then runs them.
    items = [{"id": "s%d" % i, "input": "v%d" % i,
              "ms": 20 if i < 5 else 1500} for i in range(30)]
    write_jsonl(os.path.join(work, "short.jsonl"), items)
    args = ["run", "--dataset", "short.jsonl", "--task", FX + "/fx_async.la",
            "--concurrency", "30", "--grace", "300", "-o", "short.out.jsonl",
            "-q"]
    p = start(args, work)
    up = wait_for(lambda: line_count(os.path.join(work, "short.out.jsonl"))
                  >= 5, 30)
    p.send_signal(signal.SIGINT)
    st, _, err = finish(p)
    recs, why = read_records(os.path.join(work, "short.out.jsonl"))
    s = load_json(os.path.join(work, "short.out.summary.json"))
    ok("a short --grace ends the run (exit 130)", up and st == 130,
       (up, st, err))
    ok("... calls still running are abandoned, not written",
       recs is not None and [r["index"] for r in recs] == list(range(5)) and
       s.get("engine", {}).get("abandoned") == 25 and
       s.get("status") == "interrupted",
       (why, [r["index"] for r in recs or []], s.get("engine")))
    # The command assay prints for going on, run as it says.
    hint = [l.split("to finish the run: ", 1)[1] for l in err.splitlines()
            if "to finish the run: " in l]
    ok("... stderr says how to finish: run -c SUMMARY -o OUTPUT --resume",
       hint and shlex.split(hint[0])[1:] ==
       ["run", "-c", "short.out.summary.json", "-o", "short.out.jsonl",
        "--resume"], err)
    st, _, err = run(shlex.split(hint[0])[1:] if hint else args, work)
    recs, why = read_records(os.path.join(work, "short.out.jsonl"))
    ok("... and that command completes the run exactly",
       st == 0 and recs is not None and
       [r["index"] for r in recs] == list(range(30)) and
       all(r["input"] == items[r["index"]] and r["error"] is None and
           r["output"]["output"] == items[r["index"]]["input"] and
           r["id"] == items[r["index"]]["id"] for r in recs),
       (st, err, why))

    # A second signal exits at once, during the grace period.
    items = [{"id": "h%d" % i, "input": "v%d" % i, "ms": 10000}
             for i in range(10)]
    write_jsonl(os.path.join(work, "hard.jsonl"), items)
    p = start(["run", "--dataset", "hard.jsonl", "--task",
               FX + "/fx_async.la", "--concurrency", "5", "-o",
               "hard.out.jsonl", "-q"], work)
    up = wait_for(lambda: summary_running(
        os.path.join(work, "hard.out.summary.json")), 30)
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    time.sleep(0.3)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    st, _, err = finish(p)
    took = time.monotonic() - t0
    recs, why = read_records(os.path.join(work, "hard.out.jsonl"))
    # Calls take 10 s and the default grace is 10 s: without the second
    # signal the run would last about 10 s more.
    ok("a second signal exits 130 at once (%.2f s; calls need 10 s)" % took,
       up and st == 130 and took < 5, (up, st, took, err))
    s = load_json(os.path.join(work, "hard.out.summary.json"))
    ok("... what was written stays valid (records, and the summary from "
       "the start)", recs is not None and
       all(r["error"] is None for r in recs) and
       s.get("status") == "running" and "fingerprint" in s, (why, s))


# ---- misbehaving plugins --------------------------------------------------------

def test_plugins(work):
    two = os.path.join(work, "two.jsonl")
    write_jsonl(two, [{"id": "a", "input": "x"}, {"id": "b", "input": "y"}])

    st, _, err = run(["run", "--dataset", "two.jsonl", "--task",
                      FX + "/fx_never.la", "--timeout", "200", "--retries",
                      "1", "-o", "never.jsonl", "-q"], work)
    recs, why = read_records(os.path.join(work, "never.jsonl"))
    s = load_json(os.path.join(work, "never.summary.json"))
    ok("a call that never completes gives timeout records (exit 1)",
       st == 1 and recs is not None and len(recs) == 2 and
       all(r["error"] and r["error"]["code"] == "timeout" and
           r["attempts"] == 2 and r["output"] is None for r in recs),
       (st, err, why, recs))
    ok("... each attempt's timeout is counted and retried",
       s.get("engine", {}).get("timeouts") == 4 and
       s.get("engine", {}).get("retries_by_cause", {}).get("timeout") == 2,
       s.get("engine"))

    # fx_twice: item a's second completion comes after its record is
    # written (b keeps the run going); c completes twice at once.
    write_jsonl(os.path.join(work, "twice.jsonl"),
                [{"id": "a", "ms": 10, "ms2": 100},
                 {"id": "b", "ms": 300, "ms2": 300}, {"id": "c"}])
    st, _, err = run(["run", "--dataset", "twice.jsonl", "--task",
                      FX + "/fx_twice.la", "-o", "twice.out.jsonl", "-q"],
                     work)
    recs, why = read_records(os.path.join(work, "twice.out.jsonl"))
    s = load_json(os.path.join(work, "twice.out.summary.json"))
    ok("a call completed twice gives one record with the first result",
       st == 0 and recs is not None and
       [r["index"] for r in recs] == [0, 1, 2] and
       all(r["output"] == {"output": "completion 1"} for r in recs),
       (st, err, why, recs))
    ok("... and the second completion is counted as a plugin fault",
       s.get("engine", {}).get("plugin_faults", 0) >= 2 and
       s.get("counts", {}).get("plugin_faults", 0) >= 2,
       (s.get("engine"), s.get("counts")))

    write_jsonl(os.path.join(work, "thread.jsonl"),
                [{"id": "t%d" % i, "input": "v%d" % i, "ms": 5}
                 for i in range(50)])
    st, _, err = run(["run", "--dataset", "thread.jsonl", "--task",
                      FX + "/fx_thread.la", "--concurrency", "16", "-o",
                      "thread.out.jsonl", "-q"], work)
    recs, why = read_records(os.path.join(work, "thread.out.jsonl"))
    ok("completions from a plugin's own threads work",
       st == 0 and recs is not None and len(recs) == 50 and
       all(r["output"]["output"] == "v%d" % r["index"] and
           r["output"]["foreign"] is True for r in recs), (st, err, why))

    for comp in ("sync", "async"):
        st, _, err = run(["run", "--dataset", "two.jsonl", "--task",
                          FX + "/fx_nothing.la:" + comp, "--metric",
                          "equals", "-o", "nothing_%s.jsonl" % comp, "-q"],
                         work)
        recs, why = read_records(os.path.join(work,
                                              "nothing_%s.jsonl" % comp))
        ok("a %s task returning nothing gives a no_output error, no "
           "score run (exit 1)" % comp,
           st == 1 and recs is not None and len(recs) == 2 and
           all(r["error"] and r["error"]["code"] == "no_output" and
               r["scores"] == {} for r in recs), (st, err, why, recs))

    for kind in ("nan", "inf"):
        st, _, err = run(["run", "--dataset", "two.jsonl", "--task", "echo",
                          "--metric", FX + "/fx_badmetric.la:nonfinite",
                          "--opt", "kind=" + kind, "--metric", "equals",
                          "--map", "reference=input", "-o",
                          "nf_%s.jsonl" % kind, "-q"], work)
        recs, why = read_records(os.path.join(work, "nf_%s.jsonl" % kind))
        ok("a metric scoring %s gives a failed score, the other scores "
           "kept (exit 1)" % kind,
           st == 1 and recs is not None and len(recs) == 2 and
           all(r["scores"]["nonfinite"]["value"] is None and
               "finite" in (r["scores"]["nonfinite"]["error"] or "") and
               r["scores"]["equals"]["value"] == 1 and r["error"] is None
               for r in recs), (st, err, why, recs))

    # A sync call past its timeout: a timeout record at the timeout, the
    # late result dropped and counted. With 2 workers and 2 items in
    # flight, item 0 holds a worker 700 ms while the others (100 ms each,
    # never queued more than 100 ms) keep the run going past the moment
    # its late result arrives.
    items = [{"id": "s0", "input": "v0", "ms": 700}] + [
        {"id": "s%d" % i, "input": "v%d" % i, "ms": 100}
        for i in range(1, 15)]
    write_jsonl(os.path.join(work, "slow.jsonl"), items)
    st, _, err = run(["run", "--dataset", "slow.jsonl", "--task",
                      FX + "/fx_slow.la", "--timeout", "400", "--retries",
                      "0", "--threads", "2", "--concurrency", "2", "-o",
                      "slow.out.jsonl", "-q"], work)
    recs, why = read_records(os.path.join(work, "slow.out.jsonl"))
    s = load_json(os.path.join(work, "slow.out.summary.json"))
    ok("a sync call past its timeout gives a timeout record (exit 1)",
       st == 1 and recs is not None and len(recs) == 15 and
       recs[0]["error"] and recs[0]["error"]["code"] == "timeout" and
       recs[0]["output"] is None and
       all(r["error"] is None and r["output"]["output"] == "v%d" % r["index"]
           for r in recs[1:]), (st, err, why, recs))
    ok("... its late result is dropped and counted",
       s.get("engine", {}).get("late_completions") == 1 and
       s.get("engine", {}).get("timeouts") == 1, s.get("engine"))

    # One slow sync call must not hold back or time out the calls around
    # it: 199 calls of 1 ms and one of 2 s on 2 workers, 1 s timeout.
    items = [{"id": "h%d" % i, "input": "v%d" % i,
              "ms": 2000 if i == 150 else 1} for i in range(200)]
    write_jsonl(os.path.join(work, "hol.jsonl"), items)
    st, _, err = run(["run", "--dataset", "hol.jsonl", "--task",
                      FX + "/fx_slow.la", "--timeout", "1000", "--retries",
                      "0", "--threads", "2", "-o", "hol.out.jsonl", "-q"],
                     work)
    recs, why = read_records(os.path.join(work, "hol.out.jsonl"))
    ok("a slow sync call times out alone: the calls beside it on the "
       "worker pool are neither held back nor timed out",
       st == 1 and recs is not None and len(recs) == 200 and
       [r["index"] for r in recs if r["error"]] == [150],
       (st, why, [r["index"] for r in recs or [] if r["error"]]))

    write_jsonl(os.path.join(work, "stuck.jsonl"),
                [{"id": "s0", "input": "v0", "ms": 10000},
                 {"id": "s1", "input": "v1", "ms": 10}])
    t0 = time.monotonic()
    st, _, err = run(["run", "--dataset", "stuck.jsonl", "--task",
                      FX + "/fx_slow.la", "--timeout", "300", "--retries",
                      "0", "-o", "stuck.out.jsonl", "-q"], work)
    took = time.monotonic() - t0
    recs, why = read_records(os.path.join(work, "stuck.out.jsonl"))
    ok("a sync call stuck for 10 s: the host leaves without it (%.1f s)"
       % took, st == 1 and took < 8 and recs is not None and
       len(recs) == 2 and recs[0]["error"]["code"] == "timeout" and
       recs[1]["error"] is None, (st, took, err, why))
    ok("... with a warning saying so", "warning" in err and
       "still running" in err, err)
    s = load_json(os.path.join(work, "stuck.out.summary.json"))
    ok("... after writing the final summary", s.get("status") == "completed"
       and s.get("counts", {}).get("items") == 2, s.get("status"))

    st, out, err = run(["run", "--dataset", "two.jsonl", "--task",
                        FX + "/fx_initfail.la", "-o", "initfail.jsonl"], work)
    ok("a plugin whose init fails: exit 2 with the plugin's message",
       st == 2 and "cannot open model file '/nonexistent/model.bin'" in err,
       (st, err))
    ok("... before any work: no records file, no summary",
       not os.path.exists(os.path.join(work, "initfail.jsonl")) and
       not os.path.exists(os.path.join(work, "initfail.summary.json")))

    test_crash(work)


def test_crash(work):
    # fx_crash's crashing call waits for the "go" file, which the test
    # creates once the 150 records before the item are on disk: the crash
    # comes after them whatever the machine's speed.
    items = [{"id": "c%d" % i, "input": "v%d" % i} for i in range(200)]
    items[150] = {"id": "c150", "input": "v150", "crash": True}
    write_jsonl(os.path.join(work, "crash.jsonl"), items)
    marker = os.path.join(work, "crash.marker")
    go = os.path.join(work, "crash.go")
    args = ["run", "--dataset", "crash.jsonl", "--task",
            FX + "/fx_crash.la", "--opt", "marker=" + marker, "--opt",
            "go=" + go, "--metric", "equals", "--map", "reference=input",
            "-o", "crash.out.jsonl", "-q"]
    p = start(args, work)
    before = wait_for(lambda: line_count(os.path.join(
        work, "crash.out.jsonl")) >= 150, 15)
    open(go, "w").close()
    st, _, err = finish(p)
    recs, why = read_records(os.path.join(work, "crash.out.jsonl"))
    # In a sanitizer build the invalid store is caught and reported by the
    # sanitizer, which then ends the process itself (status 1) instead of
    # the kernel's SIGSEGV: the host dies either way.
    sanitized = st > 0 and ("runtime error" in err or "AddressSanitizer" in err)
    ok("a plugin's SIGSEGV kills the host (status %s)" % st,
       before and (st == -signal.SIGSEGV or sanitized) and
       os.path.exists(marker), (before, st, err))

    def good(r):
        i = r["index"]
        return (r["id"] == items[i]["id"] and r["input"] == items[i] and
                r["output"] == {"output": items[i]["input"]} and
                r["error"] is None and r["scores"]["equals"]["value"] == 1)
    ok("... every record before the crash is intact (150 of them)",
       recs is not None and [r["index"] for r in recs] == list(range(150))
       and all(good(r) for r in recs), why or len(recs))
    st, _, err = run(args + ["--resume"], work)
    recs, why = read_records(os.path.join(work, "crash.out.jsonl"))
    s = load_json(os.path.join(work, "crash.out.summary.json"))
    ok("... and --resume finishes the run with all records (exit 0)",
       st == 0 and recs is not None and
       [r["index"] for r in recs] == list(range(200)) and
       all(good(r) for r in recs), (st, err, why))
    ok("... its summary covers all 200",
       s.get("counts", {}).get("items") == 200 and
       s.get("resumed_from") == 150 and s.get("status") == "completed",
       json.dumps({k: s.get(k) for k in ("status", "counts",
                                         "resumed_from")}))


# ---- faults at scale --------------------------------------------------------------

class Mock:
    """tests/mockllm on an ephemeral port, ended by close()."""

    def __init__(self, work, name, *args):
        self.port_file = os.path.join(work, name + ".port")
        self.proc = subprocess.Popen(
            [MOCK, "--port", "0", "--port-file", self.port_file] +
            list(args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=child_setup)
        if not wait_for(lambda: os.path.exists(self.port_file) and
                        open(self.port_file).read().strip() != "", 10):
            self.close()
            raise RuntimeError("mockllm did not start")
        self.port = int(open(self.port_file).read().strip())
        self.url = "http://127.0.0.1:%d/v1" % self.port

    def stats(self):
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d/stats" % self.port,
                                    timeout=10) as r:
            return json.load(r)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()


MOCKS = []


def test_faults(work):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    mock = Mock(work, "faults", "--p429", "0.02", "--p500", "0.02",
                "--phang", "0.002", "--latency-ms", "5", "--retry-after", "0",
                "--seed", "4")
    MOCKS.append(mock)
    n = 10000
    items = [{"id": "m%d" % i, "input": "question %d" % i} for i in range(n)]
    write_jsonl(os.path.join(work, "big.jsonl"), items)
    st, _, err = run(["run", "--dataset", "big.jsonl", "--task",
                      "openai_chat", "--opt", "base_url=" + mock.url,
                      "--opt", "model=mock", "--opt", "prompt={{input}}",
                      "--concurrency", "1000", "--timeout", "2000",
                      "--retries", "6", "-o", "big.out.jsonl", "-q"], work,
                     env=env_with(OPENAI_API_KEY="sk-test"))
    recs, why = read_records(os.path.join(work, "big.out.jsonl"))
    s = load_json(os.path.join(work, "big.out.summary.json"))
    ok("10,000 items through 2% 429, 2% 500, 0.2% hangs: exit 0", st == 0,
       (st, err))
    ok("... every record has its own output and no error",
       recs is not None and len(recs) == n and
       all(r["error"] is None and r["output"]["output"] ==
           items[r["index"]]["input"] and r["input"] == items[r["index"]]
           for r in recs), why)
    ok("... none lost or duplicated: indexes 0..9999 in order",
       recs is not None and [r["index"] for r in recs] == list(range(n)))
    by = s.get("engine", {}).get("retries_by_cause", {})
    ok("... the summary counts retries by cause (429 %s, 5xx %s, timeout %s)"
       % (by.get("429"), by.get("5xx"), by.get("timeout")),
       by.get("429", 0) > 0 and by.get("5xx", 0) > 0 and
       by.get("timeout", 0) > 0 and s.get("counts", {}).get("ok") == n,
       s.get("engine"))
    try:
        ms = mock.stats()
    except OSError as e:
        ms = {"error": str(e)}
    resp = ms.get("responses", {})
    # Each 429 and 500 the server sent is a retry the summary counts, but
    # for those that reached a call already given up at --timeout (that
    # attempt counts as a timeout): on a slow machine (a sanitizer build on
    # a loaded VM) requests that were not hung time out too.
    late = by.get("timeout", 0)
    ok("... the server's 429s and 500s are the retries the summary counts",
       by.get("429", -1) <= resp.get("429", 0) <= by.get("429", 0) + late and
       by.get("5xx", -1) <= resp.get("500", 0) <= by.get("5xx", 0) + late
       and resp.get("200", 0) >= n, (ms, by))


# ---- security -----------------------------------------------------------------------

KEY = "sk-assay-leakcheck-7f3a9c2e51d04b88e6"


class Capture(http.server.BaseHTTPRequestHandler):
    """Answers like an OpenAI chat endpoint and remembers the
    Authorization header, to show the key is really used."""
    seen = []

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(n)
        Capture.seen.append(self.headers.get("Authorization"))
        body = json.dumps({"id": "c", "object": "chat.completion",
                           "created": 0, "model": "mock",
                           "choices": [{"index": 0, "message": {
                               "role": "assistant", "content": "hi"},
                               "finish_reason": "stop"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_security(work):
    sec = os.path.join(work, "sec")
    os.mkdir(sec)
    env = env_with(OPENAI_API_KEY=KEY)
    outputs = []

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    write_jsonl(os.path.join(sec, "one.jsonl"), [{"id": "k", "input": "q"}])
    st, out, err = run(["run", "--dataset", "one.jsonl", "--task",
                        "openai_chat", "--opt",
                        "base_url=http://127.0.0.1:%d/v1" %
                        srv.server_address[1], "--opt", "model=mock", "-o",
                        "capture.jsonl"], sec, env=env)
    srv.shutdown()
    srv.server_close()
    outputs += [out, err]
    ok("the API key is sent as a bearer token (so the leak checks below "
       "can fail)", st == 0 and Capture.seen == ["Bearer " + KEY],
       (st, err, Capture.seen))

    mock = Mock(work, "sec")
    MOCKS.append(mock)
    items = [{"id": "fine", "input": "what is 2+2"},
             {"id": "task401", "input": "[[mock status=401]] who am i"},
             {"id": "judge401",
              "input": "[[mock key=k1]][[mock fail=ok,401]] judge fails"},
             {"id": "msg401", "input": "[[mock status=401]][[mock "
              "message=Incorrect API key provided]] x"}]
    write_jsonl(os.path.join(sec, "sec.jsonl"), items)
    st, out, err = run(["run", "--dataset", "sec.jsonl", "--task",
                        "openai_chat", "--opt", "base_url=" + mock.url,
                        "--opt", "model=mock", "--metric", "usefulness",
                        "--opt", "base_url=" + mock.url, "--opt",
                        "model=mock-judge", "-o", "sec.out.jsonl"], sec,
                       env=env)
    outputs += [out, err]
    recs, why = read_records(os.path.join(sec, "sec.out.jsonl"))
    errs = {r["id"]: r for r in recs or []}
    ok("a run with 401s on the task and the judge finishes (exit 1) with "
       "those errors",
       st == 1 and len(errs) == 4 and errs["fine"]["error"] is None and
       errs["task401"]["error"] is not None and
       errs["judge401"]["error"] is None and
       errs["judge401"]["scores"]["usefulness"]["error"] is not None,
       (st, err, why, recs))
    for args in (["plugins", "openai_chat"], ["plugins", "usefulness"],
                 ["plugins"], ["run", "--help"]):
        st, out, err = run(args, sec, env=env)
        outputs += [out, err]
    leaks = []
    for root, _, files in os.walk(sec):
        for f in files:
            if KEY.encode() in file_bytes(os.path.join(root, f)):
                leaks.append(os.path.join(root, f))
    ok("the API key is in no file the runs wrote", not leaks, leaks)
    ok("the API key is on no stdout or stderr",
       not any(KEY in o for o in outputs))

    # Files and directories the host creates, under umask 000.
    um = os.path.join(work, "umask")
    os.mkdir(um)
    shutil.copy(os.path.join(work, "two.jsonl"), um)
    run(["run", "--dataset", "two.jsonl", "--task", "echo", "-q"], um,
        umask=0)
    run(["run", "--dataset", "two.jsonl", "--task", "echo", "-q", "-o",
         "sub/dir/x.jsonl"], um, umask=0)
    run(["run", "--dataset", "two.jsonl", "--task", "echo", "-q", "-o",
         "r.jsonl", "--resume"], um, umask=0)
    # The other commands that write files: report and merge.
    run(["report", "r.jsonl"], um, umask=0)
    run(["merge", "r.jsonl", "-o", "m/merged.jsonl", "-q"], um, umask=0)
    made = []
    for root, dirs, files in os.walk(um):
        for name in dirs + files:
            if name != "two.jsonl":
                p = os.path.join(root, name)
                made.append((os.path.relpath(p, um),
                             os.stat(p).st_mode & 0o777))
    ok("under umask 000 the host creates files and directories",
       len([m for m in made if m[0].endswith(".jsonl")]) == 4 and
       any(m[0] == "r.html" for m in made), made)
    bad = ["%s %o" % m for m in made if m[1] & 0o002]
    ok("... none of them world-writable", not bad, bad)

    # No plugin from the current directory unless named by a path. The
    # fakes are a real plugin (fx_initfail: its init fails with a message
    # of its own), so loading one would show in the exit status and stderr.
    cwd = os.path.join(work, "cwd")
    os.mkdir(cwd)
    shutil.copy(os.path.join(work, "two.jsonl"), cwd)
    fake = os.path.join(FX, ".libs", "fx_initfail.so")
    for name in ("echo.so", "fx_initfail.so"):
        shutil.copy(fake, os.path.join(cwd, name))
    st, out, err = run(["run", "--dataset", "two.jsonl", "--task", "echo",
                        "-o", "e.jsonl", "-q"], cwd)
    s = load_json(os.path.join(cwd, "e.summary.json"))
    files = [p.get("file", "") for p in s.get("plugins", [])]
    ok("a fake echo.so in the current directory is ignored for 'echo'",
       st == 0 and files and not files[0].startswith(cwd), (st, err, files))
    for path in ("", ":", "::"):
        st, out, err = run(["run", "--dataset", "two.jsonl", "--task",
                            "fx_initfail", "-o", "v.jsonl", "-q"], cwd,
                           env=env_with(ASSAY_PLUGIN_PATH=path))
        ok("fx_initfail.so is not loaded from the current directory "
           "(ASSAY_PLUGIN_PATH=%r)" % path,
           st == 2 and "cannot find plugin 'fx_initfail'" in err and
           "model file" not in err, (st, err))
    st, out, err = run(["plugins"], cwd, env=env_with(ASSAY_PLUGIN_PATH=":"))
    ok("'assay plugins' lists nothing from the current directory",
       st == 0 and "fx_initfail" not in out and cwd not in out, out[-300:])
    st, out, err = run(["run", "--dataset", "two.jsonl", "--task",
                        "./fx_initfail.so", "-o", "v.jsonl", "-q"], cwd)
    ok("... while an explicit ./fx_initfail.so is loaded (its init fails)",
       st == 2 and "cannot open model file" in err, (st, err))


# ---- limits --------------------------------------------------------------------------

def test_limits(work):
    lim = os.path.join(work, "limits")
    os.mkdir(lim)
    with open(os.path.join(lim, "lim.jsonl"), "wb") as f:
        f.write(json.dumps({"id": "a", "input": "short"}).encode() + b"\n")
        f.write(json.dumps({"id": "b", "input": "x" * 5000}).encode() + b"\n")
        f.write(b'{"id": "u", "input": "bad \xff\xfe byte"}\n')
        f.write(json.dumps({"id": "c", "input": "ok"}).encode() + b"\n")
    st, _, err = run(["run", "--dataset", "lim.jsonl", "--task", "echo",
                      "--metric", "equals", "--map", "reference=input",
                      "--max-item-bytes", "1000", "-o", "l.jsonl", "-q"], lim)
    recs, why = read_records(os.path.join(lim, "l.jsonl"))
    ok("an item over --max-item-bytes and one with invalid UTF-8 become "
       "bad_item records, the rest run (exit 1)",
       st == 1 and recs is not None and len(recs) == 4 and
       recs[0]["error"] is None and recs[3]["error"] is None and
       recs[1]["error"]["code"] == "bad_item" and
       "--max-item-bytes" in recs[1]["error"]["message"] and
       recs[2]["error"]["code"] == "bad_item" and
       "UTF-8" in recs[2]["error"]["message"] and
       recs[1]["scores"] == {} and recs[2]["scores"] == {},
       (st, err, why, recs))

    mock = Mock(work, "lim")
    MOCKS.append(mock)
    write_jsonl(os.path.join(lim, "big.jsonl"),
                [{"id": "a", "input": "[[mock oversize=200000]] hi"},
                 {"id": "b", "input": "fine"}])
    st, _, err = run(["run", "--dataset", "big.jsonl", "--task",
                      "openai_chat", "--opt", "base_url=" + mock.url,
                      "--opt", "model=mock", "--max-response-bytes",
                      "100000", "-o", "b.jsonl", "-q"], lim,
                     env=env_with(OPENAI_API_KEY="sk-test"))
    recs, why = read_records(os.path.join(lim, "b.jsonl"))
    ok("a response over --max-response-bytes fails its item, not retried",
       st == 1 and recs is not None and len(recs) == 2 and
       "--max-response-bytes" in (recs[0]["error"] or {}).get("message", "")
       and recs[0]["attempts"] == 1 and recs[1]["error"] is None,
       (st, err, recs))

    for args, text in ((["--opt", "ms=-5"], "must be >= 0"),
                       (["--opt", "ms=abc"], "must be a number"),
                       (["--opt", "nosuch=1"], "unknown option 'nosuch'"),
                       (["--concurrency", "0"], "--concurrency"),
                       (["--timeout", "-1"], "--timeout")):
        st, _, err = run(["run", "--dataset", "../two.jsonl", "--task",
                          "delay"] + args + ["-o", "o.jsonl", "-q"], lim)
        ok("a bad value (%s) is refused with exit 2 before any work"
           % " ".join(args),
           st == 2 and text in err and
           not os.path.exists(os.path.join(lim, "o.jsonl")), (st, err))


GROUPS = ("kill", "resume", "signals", "plugins", "faults", "security",
          "limits")


def run_groups_at_once(want):
    """Runs each group in a process of its own, all at once, and prints
    their output in the order of GROUPS. The groups share nothing (each has
    its own work directory and mock servers) and mostly wait, on timers,
    signals and the mock's latency: together they take about the longest
    one's time rather than the sum (39 s down to about 12 s here)."""
    t0 = time.monotonic()
    env = dict(os.environ, ASSAY_TEST_SERIAL="1")
    procs = [(g, subprocess.Popen([sys.executable, __file__, g], env=env,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True))
             for g in GROUPS if g in want]
    npass = nfail = 0
    status = 0
    for g, p in procs:
        out, _ = p.communicate()
        sys.stdout.write(out)
        sys.stdout.flush()
        counts = out.rstrip().rsplit("\n", 1)[-1].split()
        if (p.returncode not in (0, 1) or len(counts) != 4 or
                counts[1] != "passed,"):
            nfail += 1
            print("FAIL group %s ended with status %d" % (g, p.returncode))
        else:
            npass += int(counts[0])
            nfail += int(counts[2])
        status = status or p.returncode
    print("# total %.1f s (groups at once; ASSAY_TEST_SERIAL=1 runs them "
          "one after another)" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail or status else 0


def main():
    want = sys.argv[1:] or list(GROUPS)
    for g in want:
        if g not in GROUPS:
            print("unknown group %r; groups: %s" % (g, " ".join(GROUPS)))
            return 2
    if len(want) > 1 and not os.environ.get("ASSAY_TEST_SERIAL"):
        return run_groups_at_once(want)
    work = tempfile.mkdtemp(prefix="assay-rel.")
    t0 = time.monotonic()
    try:
        write_jsonl(os.path.join(work, "two.jsonl"),
                    [{"id": "a", "input": "x"}, {"id": "b", "input": "y"}])
        ref = None
        if {"kill", "resume", "signals"} & set(want):
            ref = reference_run(work)
        for g in GROUPS:
            if g not in want:
                continue
            t = time.monotonic()
            print("# %s" % g, flush=True)
            try:
                if g in ("kill", "resume", "signals"):
                    globals()["test_" + g](work, ref)
                else:
                    globals()["test_" + g](work)
            except Exception:
                # A record without the expected shape ends the group as one
                # failure with the place it happened.
                ok("group %s ran to its end" % g, False,
                   traceback.format_exc())
            print("# %s: %.1f s" % (g, time.monotonic() - t), flush=True)
    finally:
        for m in MOCKS:
            m.close()
        if os.environ.get("ASSAY_TEST_KEEP"):
            print("# kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("# total %.1f s" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
