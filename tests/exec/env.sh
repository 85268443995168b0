#!/bin/sh
# Prints the environment variable EXEC_VAR, whether HOME is set, and the
# working directory, as JSON.
cat >/dev/null
printf '{"var":"%s","home_set":%s,"cwd":"%s"}\n' "${EXEC_VAR-}" \
  "$([ -n "${HOME+x}" ] && echo true || echo false)" "$(pwd -P)"
