#!/usr/bin/env python3
"""A persistent exec worker: one JSON request per stdin line, one JSON
reply per stdout line. Items steer it: {"crash": true} makes it die,
{"hang": true} makes it stop answering, {"fail": "msg"} makes it reply
with an error, {"garbage": true} makes it reply with a line that is not
JSON. Replies carry the worker's pid so tests can count processes."""
import json
import os
import sys
import time

print("worker %d starting" % os.getpid(), file=sys.stderr, flush=True)
for line in sys.stdin:
    item = json.loads(line)
    if item.get("crash"):
        print("worker %d: crashing on purpose" % os.getpid(), file=sys.stderr,
              flush=True)
        os._exit(7)
    if item.get("hang"):
        time.sleep(60)
    if item.get("fail"):
        reply = {"error": item["fail"]}
    elif item.get("garbage"):
        sys.stdout.write("this is not json\n")
        sys.stdout.flush()
        continue
    else:
        reply = {"output": str(item.get("input", "")).upper(),
                 "pid": os.getpid()}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
