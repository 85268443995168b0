# tests/exec.mk: the exec task through the real binary, with small helper
# programs in tests/exec/; and the installed SDK (a separate configure and
# install into a temporary prefix, then the template built against it).
TESTS += tests/test_exec.sh
# (test_sdk.sh is in TESTS from tests/local.mk, among the first.)
EXTRA_DIST += tests/test_exec.sh tests/test_sdk.sh tests/exec
