#!/bin/sh
# Kills itself with SIGTERM after reading its item.
cat >/dev/null
echo "about to die" >&2
kill -TERM $$
sleep 5
