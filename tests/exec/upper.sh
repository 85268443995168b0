#!/bin/sh
# Reads one item (JSON) on stdin and prints its "input" upper-cased, as
# plain text: the smallest program a user would evaluate with exec.
exec python3 -c '
import json, sys
item = json.load(sys.stdin)
print(str(item.get("input", "")).upper())
'
