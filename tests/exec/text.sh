#!/bin/sh
# Prints plain text (not JSON) with blank lines around it: exec takes the
# trimmed text as the output string.
cat >/dev/null
printf '\n  hello from %s  \n\n' "text.sh"
