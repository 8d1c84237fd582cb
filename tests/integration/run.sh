#!/usr/bin/env bash
# Integration suite entry point, run by `make check` (automake TESTS).
#
#   RZ_SRCDIR  repo top (set by make check; default: two levels up from here)
#   RZPROXY    the daemon under test (set by make check; default $RZ_SRCDIR/src/rzproxy)
#   RZCTL      the director tool under test (set by make check; default $RZ_SRCDIR/src/rzproxy-ctl)
#
#   RZ_TEST_SELECT  only the tests this pytest -k expression selects
#
# Extra arguments go to pytest, e.g. tests/integration/run.sh -k pipeline -x
# Exit status is pytest's, except that "no tests collected" (5) is a failure.
set -u

here=$(cd "$(dirname "$0")" && pwd) || exit 99
top=${RZ_SRCDIR:-$(cd "$here/../.." && pwd)}
top=$(cd "$top" && pwd) || exit 99
export RZ_SRCDIR="$top"
export RZPROXY="${RZPROXY:-$top/src/rzproxy}"
export RZCTL="${RZCTL:-$top/src/rzproxy-ctl}"
# the source tree may be read-only (make distcheck): no bytecode, no cache
export PYTHONDONTWRITEBYTECODE=1

if [ "${RZ_TEST_DIRECT:-0}" != 1 ] && [ ! -x "$RZPROXY" ]; then
	echo "run.sh: rzproxy binary not found or not executable: $RZPROXY" >&2
	exit 1
fi

cd "$top" || exit 99
# RZ_TEST_SELECT: a pytest -k expression, for a run inside `make distcheck`
# (make passes no arguments through to here)
set -- ${RZ_TEST_SELECT:+-k "$RZ_TEST_SELECT"} "$@"
/usr/bin/python3 -m pytest -q -p no:cacheprovider -rfEs --durations=15 tests/integration "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
	echo "run.sh: pytest collected no tests" >&2
	exit 1
fi
exit "$rc"
