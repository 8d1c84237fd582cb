"""`make install DESTDIR=...` installs the daemon, rzproxy-ctl, both man
pages and the sample conf, and what it installs works."""

import os
import subprocess

import pytest

pytestmark = pytest.mark.proxy_only

BUILDDIR = os.environ.get("RZ_BUILDDIR") or os.environ.get("RZ_SRCDIR") or os.path.join(
    os.path.dirname(__file__), "..", "..")


def installed(dest, suffix):
    found = [f for f in dest.rglob("*") if f.is_file() and str(f).endswith(suffix)]
    assert len(found) == 1, "%s: %r" % (suffix, found)
    return found[0]


def test_make_install(tmp_path):
    dest = tmp_path / "root"
    p = subprocess.run(["make", "-C", BUILDDIR, "install", "DESTDIR=%s" % dest],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert p.returncode == 0, p.stdout.decode()[-3000:]
    daemon = installed(dest, "/bin/rzproxy")
    ctl = installed(dest, "/bin/rzproxy-ctl")
    man = installed(dest, "/man8/rzproxy.8")
    ctlman = installed(dest, "/man8/rzproxy-ctl.8").read_text()
    assert ctlman.startswith(".TH RZPROXY-CTL 8") and "%SYSCONFDIR%" not in ctlman
    conf = installed(dest, "/etc/rzproxy.conf")
    text = man.read_text()
    assert text.startswith(".TH RZPROXY 8") and "%VERSION%" not in text and "%SYSCONFDIR%" not in text
    # the man page names the conf where it was installed
    assert ".I /%s\n" % conf.relative_to(dest) in text, conf
    out = subprocess.run([str(daemon), "--version"], stdout=subprocess.PIPE, timeout=10).stdout.decode()
    assert out.startswith("rzproxy ")
    out = subprocess.run([str(ctl), "--version"], stdout=subprocess.PIPE, timeout=10).stdout.decode()
    assert out.startswith("rzproxy-ctl ")
    check = subprocess.run([str(daemon), "--test-conf", str(conf)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
    assert check.returncode == 0, check.stdout.decode()
