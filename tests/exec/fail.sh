#!/bin/sh
# Writes much noise to stderr, then the real reason, and exits 3: exec's
# error must carry the exit status and the end of stderr, not the noise.
cat >/dev/null
i=0
while [ $i -lt 200 ]; do
  echo "noise line $i of the start-up chatter" >&2
  i=$((i + 1))
done
echo "fatal: model file 'weights.bin' is missing" >&2
exit 3
