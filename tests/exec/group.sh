#!/bin/sh
# Item {"role":"spawn"}: starts a background `sleep 30` (same process group)
# and waits, writing both pids to $EXEC_PIDFILE; the call's timeout must
# kill both. Any other item: reports which of those pids are still alive
# (zombies count as gone), polling for up to 10 s.
item=$(cat)
case $item in
*'"role":"spawn"'*)
  sleep 30 &
  echo "$! $$" >"$EXEC_PIDFILE"
  wait
  ;;
*)
  pids=$(cat "$EXEC_PIDFILE")
  n=0
  while :; do
    alive=
    for pid in $pids; do
      if kill -0 "$pid" 2>/dev/null &&
        ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
        alive="$alive $pid"
      fi
    done
    [ -z "$alive" ] || [ $n -ge 100 ] && break
    sleep 0.1
    n=$((n + 1))
  done
  printf '{"pids":"%s","alive":"%s"}\n' "$pids" "${alive# }"
  ;;
esac
