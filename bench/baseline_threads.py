#!/usr/bin/env python3
"""bench/baseline_threads.py: the thread-pool baseline of the LLM benchmark.

The shape of Opik's evaluate() with task_threads=C: a ThreadPoolExecutor of C
workers, one future per dataset item, results collected as they complete.
Each worker keeps its own http.client keep-alive connection. Per item it does
exactly what `assay run --task openai_chat --metric equals` does: POST a chat
completion with the item's input as the user message, read the reply, compare
the assistant content to the item's reference (case-insensitively, as the
equals metric does by default) and write one JSONL record.

Python standard library only. Usage:
  baseline_threads.py --url http://127.0.0.1:PORT/v1/chat/completions \
      --dataset FILE --concurrency C --output FILE [--model mock]
"""
import argparse
import concurrent.futures
import http.client
import json
import sys
import threading
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--output", required=True)
    ap.add_argument("--model", default="mock")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()

    url = urllib.parse.urlsplit(args.url)
    host, port, path = url.hostname, url.port or 80, url.path
    local = threading.local()

    def connection():
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=args.timeout)
            local.conn = conn
        return conn

    def chat(text):
        body = json.dumps({"model": args.model,
                           "messages": [{"role": "user", "content": text}]})
        for attempt in (1, 2):
            conn = connection()
            try:
                conn.request("POST", path, body=body,
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.HTTPException, OSError):
                # A keep-alive connection the server closed: reconnect once.
                conn.close()
                local.conn = None
                if attempt == 2:
                    raise
                continue
            if resp.status != 200:
                raise RuntimeError("HTTP %d: %r" % (resp.status, data[:200]))
            reply = json.loads(data)
            choice = reply["choices"][0]
            return {"output": choice["message"]["content"],
                    "model": reply.get("model"),
                    "finish_reason": choice.get("finish_reason"),
                    "usage": reply.get("usage")}

    def evaluate(index, item):
        t0 = time.monotonic()
        try:
            output = chat(item["input"])
        except Exception as e:  # a task failure is a record, not an abort
            return {"index": index, "id": item.get("id"), "trial": 0,
                    "input": item, "output": None, "scores": {},
                    "error": {"code": "error", "message": str(e)},
                    "task_ms": (time.monotonic() - t0) * 1000}
        t1 = time.monotonic()
        same = str(output["output"]).casefold() == \
            str(item.get("reference")).casefold()
        scores = {"equals": {"value": 1 if same else 0, "reason": None,
                             "error": None}}
        return {"index": index, "id": item.get("id"), "trial": 0,
                "input": item, "output": output, "scores": scores,
                "error": None, "task_ms": (t1 - t0) * 1000,
                "metrics_ms": (time.monotonic() - t1) * 1000}

    with open(args.dataset, encoding="utf-8") as f:
        items = [json.loads(line) for line in f if line.strip()]
    failed = 0
    with open(args.output, "w", encoding="utf-8") as out, \
            concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
        futures = [pool.submit(evaluate, i, item)
                   for i, item in enumerate(items)]
        for fut in concurrent.futures.as_completed(futures):
            rec = fut.result()
            if rec["error"] is not None:
                failed += 1
            out.write(json.dumps(rec) + "\n")
            out.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
