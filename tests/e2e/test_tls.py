"""HTTPS end to end: a local CA made with openssl, a certificate for tls.test, an app
deployed with `tls = {cert, key}`, and curl checking the handshake, the redirect,
HTTP/2 and the headers through nginx on loopback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.helpers import garrison

pytestmark = [
    pytest.mark.machine,
    pytest.mark.skipif(os.geteuid() != 0, reason="deploys need root"),
    pytest.mark.skipif(not shutil.which("openssl") or not shutil.which("curl"), reason="needs openssl and curl"),
]

NAME = "tls.test"
CERTS = Path("/etc/ssl/garrison-test-tls")


def sh(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)


def make_ca_and_cert(folder: Path) -> None:
    ok = lambda p: p.returncode == 0 or pytest.fail(p.stderr)  # noqa: E731
    ok(sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Garrison test CA",
          "-keyout", "ca.key", "-out", "ca.pem", cwd=folder))
    ok(sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={NAME}", "-keyout", "server.key",
          "-out", "server.csr", cwd=folder))
    (folder / "ext.cnf").write_text(f"subjectAltName=DNS:{NAME}\nbasicConstraints=CA:FALSE\n")
    ok(sh("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
          "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem", cwd=folder))


def curl(*args: str) -> subprocess.CompletedProcess:
    return sh("curl", "-sS", "--max-time", "10", "--resolve", f"{NAME}:443:127.0.0.1", "--resolve",
              f"{NAME}:80:127.0.0.1", *args)


@pytest.fixture(scope="module")
def tls_app(tmp_path_factory):
    work = tmp_path_factory.mktemp("tls")
    make_ca_and_cert(work)
    CERTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(work / "server.pem", CERTS / "fullchain.pem")
    shutil.copy(work / "server.key", CERTS / "privkey.pem")
    os.chmod(CERTS / "privkey.pem", 0o600)
    app = work / "app"
    app.mkdir()
    (app / "main.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [environ.get('wsgi.url_scheme', '?').encode()]\n"
    )
    (app / "garrison.toml").write_text(
        '[app]\nname = "tlsapp"\nentry = "main:app"\nrequirements = ""\n\n'
        f'[server]\nnames = ["{NAME}"]\ntls = {{cert = "{CERTS}/fullchain.pem", key = "{CERTS}/privkey.pem"}}\n'
    )
    proc = garrison("up", cwd=app)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield work
    garrison("down", "--purge", cwd=app)
    shutil.rmtree(CERTS, ignore_errors=True)


def test_https_answers_with_a_certificate_the_ca_vouches_for(tls_app):
    r = curl("--cacert", str(tls_app / "ca.pem"), f"https://{NAME}/")
    assert r.returncode == 0, r.stderr
    # gunicorn trusts nginx's X-Forwarded-Proto: the app knows it was reached over HTTPS.
    assert r.stdout == "https"


def test_http_redirects_to_https(tls_app):
    r = curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", f"http://{NAME}/some/path?q=1")
    assert r.stdout == f"301 https://{NAME}/some/path?q=1"


def test_hsts_and_security_headers(tls_app):
    r = curl("--cacert", str(tls_app / "ca.pem"), "-D", "-", "-o", "/dev/null", f"https://{NAME}/")
    headers = r.stdout.lower()
    assert "strict-transport-security: max-age=63072000; includesubdomains" in headers
    assert "preload" not in headers  # opt-in only
    assert "x-content-type-options: nosniff" in headers and "\nserver: nginx\n" in headers


def test_http2_and_tls_versions(tls_app):
    ca = str(tls_app / "ca.pem")
    assert curl("--cacert", ca, "--http2", "-o", "/dev/null", "-w", "%{http_version}", f"https://{NAME}/").stdout == "2"
    assert curl("--cacert", ca, "--tlsv1.2", "--tls-max", "1.2", "-o", "/dev/null", f"https://{NAME}/").returncode == 0
    old = curl("--cacert", ca, "--tlsv1.1", "--tls-max", "1.1", "-o", "/dev/null", f"https://{NAME}/")
    assert old.returncode != 0  # TLS 1.0/1.1 are refused


def test_an_untrusted_certificate_is_refused_by_the_client(tls_app):
    r = curl(f"https://{NAME}/")  # without the CA: curl must not trust it
    assert r.returncode == 60, r.stderr


def test_missing_certificate_files_are_a_one_line_error(tmp_path):
    (tmp_path / "main.py").write_text("app = None\n")
    (tmp_path / "garrison.toml").write_text(
        '[app]\nname = "tlsmissing"\nentry = "main:app"\nrequirements = ""\n\n'
        '[server]\nnames = ["missing.test"]\ntls = {cert = "/etc/ssl/nope/fullchain.pem", key = "/etc/ssl/nope/privkey.pem"}\n'
    )
    proc = garrison("up", cwd=tmp_path)
    try:
        assert proc.returncode == 4
        assert "server.tls.cert: /etc/ssl/nope/fullchain.pem does not exist" in proc.stderr.splitlines()[0]
    finally:
        garrison("down", "--purge", cwd=tmp_path)


@pytest.mark.skipif(not shutil.which("testssl"), reason="testssl.sh is not installed (apt-get install testssl.sh)")
def test_testssl_finds_only_tls12_and_tls13(tls_app):
    """testssl.sh's protocol check against nginx on loopback (bounded: timeouts, one phase)."""
    proc = sh("testssl", "--quiet", "--color", "0", "--warnings", "off", "--connect-timeout", "5",
              "--openssl-timeout", "5", "--ip", "127.0.0.1", "--protocols", "--headers", f"https://{NAME}/")
    out = proc.stdout
    lines = {ln.split()[0] + " " + ln.split()[1]: ln for ln in out.splitlines() if ln.strip().startswith(("SSLv", "TLS 1"))}
    assert "not offered" in lines["TLS 1"] and "not offered" in lines["TLS 1.1"], out
    assert "offered" in lines["TLS 1.2"] and "not offered" not in lines["TLS 1.2"], out
    assert "offered" in lines["TLS 1.3"] and "not offered" not in lines["TLS 1.3"], out
    assert "Strict Transport Security" in out and "730 days" in out, out
