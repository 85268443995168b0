#!/usr/bin/env python3
"""bench/baseline_asyncio.py: the asyncio baseline of the LLM benchmark.

One task per dataset item, gated by an asyncio.Semaphore(C), the pattern of
the asyncio evaluation engines (inspect_ai, Ragas). HTTP/1.1 is spoken over
raw asyncio streams with a pool of keep-alive connections (at most C open), so
no third-party client is needed and no per-request connection is paid. Per
item it does exactly what `assay run --task openai_chat --metric equals` does:
POST a chat completion, read the reply, compare the assistant content to the
reference (case-insensitively, as equals does by default), write one JSONL
record.

Python standard library only. Usage:
  baseline_asyncio.py --url http://127.0.0.1:PORT/v1/chat/completions \
      --dataset FILE --concurrency C --output FILE [--model mock]
"""
import argparse
import asyncio
import json
import sys
import time
import urllib.parse

MAX_BODY = 32 << 20  # the same cap as assay's --max-response-bytes


class Client:
    def __init__(self, host, port, path, timeout):
        self.host, self.port, self.path = host, port, path
        self.timeout = timeout
        self.idle = []  # keep-alive connections: (reader, writer)

    async def _exchange(self, conn, body):
        reader, writer = conn
        writer.write(("POST %s HTTP/1.1\r\nHost: %s:%d\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: %d\r\n\r\n"
                      % (self.path, self.host, self.port, len(body))).encode()
                     + body)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        if length is None or length > MAX_BODY:
            raise RuntimeError("reply without a usable Content-Length")
        data = await reader.readexactly(length)
        return status, data, close

    async def post(self, body):
        for attempt in (1, 2):
            fresh = not self.idle
            conn = self.idle.pop() if self.idle else \
                await asyncio.open_connection(self.host, self.port)
            try:
                status, data, close = await asyncio.wait_for(
                    self._exchange(conn, body), self.timeout)
            except (OSError, asyncio.IncompleteReadError):
                conn[1].close()
                if fresh or attempt == 2:
                    raise
                continue  # a stale keep-alive connection: retry on a new one
            except BaseException:
                conn[1].close()
                raise
            if close:
                conn[1].close()
            else:
                self.idle.append(conn)
            return status, data


async def run(args):
    url = urllib.parse.urlsplit(args.url)
    client = Client(url.hostname, url.port or 80, url.path, args.timeout)
    sem = asyncio.Semaphore(args.concurrency)
    with open(args.dataset, encoding="utf-8") as f:
        items = [json.loads(line) for line in f if line.strip()]
    out = open(args.output, "w", encoding="utf-8")
    failed = 0

    async def evaluate(index, item):
        nonlocal failed
        async with sem:
            t0 = time.monotonic()
            rec = {"index": index, "id": item.get("id"), "trial": 0,
                   "input": item}
            try:
                body = json.dumps({"model": args.model, "messages": [
                    {"role": "user", "content": item["input"]}]}).encode()
                status, data = await client.post(body)
                if status != 200:
                    raise RuntimeError("HTTP %d: %r" % (status, data[:200]))
                reply = json.loads(data)
                choice = reply["choices"][0]
                output = {"output": choice["message"]["content"],
                          "model": reply.get("model"),
                          "finish_reason": choice.get("finish_reason"),
                          "usage": reply.get("usage")}
            except Exception as e:  # a task failure is a record
                failed += 1
                rec.update(output=None, scores={}, task_ms=(
                    time.monotonic() - t0) * 1000,
                    error={"code": "error", "message": str(e)})
                out.write(json.dumps(rec) + "\n")
                out.flush()
                return
            t1 = time.monotonic()
            same = str(output["output"]).casefold() == \
                str(item.get("reference")).casefold()
            rec.update(output=output, scores={"equals": {
                "value": 1 if same else 0, "reason": None, "error": None}},
                error=None, task_ms=(t1 - t0) * 1000,
                metrics_ms=(time.monotonic() - t1) * 1000)
            out.write(json.dumps(rec) + "\n")
            out.flush()

    await asyncio.gather(*(evaluate(i, item) for i, item in enumerate(items)))
    out.close()
    for _, writer in client.idle:
        writer.close()
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--output", required=True)
    ap.add_argument("--model", default="mock")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
