#!/bin/sh
# The "never lose a result" tests of the assay binary, run by make check:
# kill -9 and --resume, signals and --grace, misbehaving plugins, faults at
# scale against tests/mockllm, and security checks. The tests themselves are
# in tests/reliability/test_reliability.py (python3, standard library only);
# docs/reliability.md maps each guarantee to its test. Needs ASSAY_BIN and
# ASSAY_TEST_BUILDDIR (set by make check). Extra arguments name the groups
# to run (kill, resume, signals, plugins, faults, security, limits).
here=$(dirname "$0")
src=${ASSAY_TEST_SRCDIR:-$here}
exec python3 "$src/reliability/test_reliability.py" "$@"
