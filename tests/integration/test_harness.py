"""The suite's own checks, checked: the sanitizer-report detector that
proxy_factory's teardown and run_rzproxy() rely on must see every kind of
report the sanitizer build can print, and nothing in an ordinary log."""

import os

from conftest import sanitizer_report, sanitizer_report_in

ASAN = b"""2026-01-01 00:00:00.000 notice 42 rzproxy 0.1.0 starting
=================================================================
==42==ERROR: AddressSanitizer: heap-use-after-free on address 0x602000000010 at pc 0x55
READ of size 8 at 0x602000000010 thread T0
    #0 0x55 in client_process src/client.c:812
"""

LSAN = b"""2026-01-01 00:00:01.000 notice 42 bye

=================================================================
==42==ERROR: LeakSanitizer: detected memory leaks

Direct leak of 77 byte(s) in 1 object(s) allocated from:
    #0 0x7f in malloc
"""

UBSAN = b"""2026-01-01 00:00:00.000 notice 42 rzproxy 0.1.0 starting
src/resp.c:131:19: runtime error: signed integer overflow: 9223372036854775807 + 1 cannot be represented
"""

CLEAN = b"""2026-01-01 00:00:00.000 notice 42 rzproxy 0.1.0 starting, pid 42
2026-01-01 00:00:00.100 notice 42 [main] client 7 (127.0.0.1:5): Protocol error: invalid bulk length
2026-01-01 00:00:01.000 notice 42 bye
"""


def test_sanitizer_report_finds_each_kind(tmp_path):
    for name, text, first in (("asan", ASAN, "==42==ERROR: AddressSanitizer: heap-use-after-free"),
                              ("lsan", LSAN, "==42==ERROR: LeakSanitizer: detected memory leaks"),
                              ("ubsan", UBSAN, "src/resp.c:131:19: runtime error: signed integer")):
        rep = sanitizer_report(text)
        assert rep.startswith(first), (name, rep)
        assert sanitizer_report(text.decode()) == rep, name
        path = os.path.join(str(tmp_path), name + ".log")
        with open(path, "wb") as f:
            f.write(text)
        assert sanitizer_report_in(path) == rep, name


def test_sanitizer_report_quiet_on_clean_logs(tmp_path):
    assert sanitizer_report(CLEAN) == ""
    assert sanitizer_report(b"") == ""
    assert sanitizer_report_in(os.path.join(str(tmp_path), "missing.log")) == ""
