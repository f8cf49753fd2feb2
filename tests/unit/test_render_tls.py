"""The HTTPS variants of the nginx site and the Let's Encrypt commands (pure)."""

from __future__ import annotations

import pytest

from garrison import commands as C
from garrison.config import parse_config
from garrison.errors import ConfigError
from garrison.layout import Layout
from garrison.render import nginx_site

BASE = {"app": {"name": "shop", "entry": "m:a", "static": [{"path": "static"}]}}


def site(server: dict, **kw) -> str:
    cfg = parse_config({**BASE, "server": server})
    return nginx_site(cfg, Layout.of(cfg), **kw)


def test_user_certificate_site():
    text = site({"names": ["shop.example"], "tls": {"cert": "/etc/ssl/c.pem", "key": "/etc/ssl/k.pem"}})
    assert "listen 443 ssl http2;" in text and "ssl_certificate /etc/ssl/c.pem;" in text
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in text and "TLSv1.1" not in text
    assert "return 301 https://$host$request_uri;" in text
    assert "ssl_stapling" not in text  # no OCSP responder is known for a user's certificate
    # HSTS at the server level and repeated in the static location (add_header does not inherit).
    assert text.count('add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;') == 2


def test_letsencrypt_site_staples_and_serves_the_challenge():
    text = site({"names": ["shop.example", "www.shop.example"], "tls": "letsencrypt", "tls_email": "a@shop.example",
                 "hsts_preload": True, "https_port": 8443})
    assert "ssl_certificate /etc/letsencrypt/live/shop.example/fullchain.pem;" in text
    assert "ssl_stapling on;" in text and "ssl_trusted_certificate /etc/letsencrypt/live/shop.example/chain.pem;" in text
    assert "location ^~ /.well-known/acme-challenge/ {\n        root /var/lib/garrison/acme;" in text
    assert "return 301 https://$host:8443$request_uri;" in text
    assert "includeSubDomains; preload" in text


def test_acme_bootstrap_is_plain_http_with_the_challenge():
    text = site({"names": ["shop.example"], "tls": "letsencrypt", "tls_email": "a@shop.example"}, acme_bootstrap=True)
    assert "ssl" not in text and "/.well-known/acme-challenge/" in text and "proxy_pass" in text


def test_http_only_site_has_no_tls_or_hsts():
    text = site({"names": ["shop.example"]})
    assert "ssl" not in text and "Strict-Transport-Security" not in text and "acme" not in text


@pytest.mark.parametrize(
    "server, message",
    [
        ({"names": ["shop.example"], "tls": "letsencrypt"}, "expected tls_email"),
        ({"names": ["localhost"], "tls": "letsencrypt", "tls_email": "a@b.co"}, 'can\'t prove "localhost"'),
        ({"names": ["shop.example"], "tls": "selfsigned"}, 'expected "letsencrypt" or a table'),
        ({"names": ["shop.example"], "tls": {"cert": "c.pem", "key": "/k"}}, "server.tls.cert: expected an absolute"),
        ({"names": ["shop.example"], "tls": {"cert": "/c", "key": "/k"}, "https_port": 80}, "https_port to differ"),
        ({"names": ["shop.example"], "tls_email": "nope"}, "server.tls_email: expected an e-mail address"),
    ],
)
def test_tls_config_errors(server, message):
    with pytest.raises(ConfigError) as exc:
        parse_config({**BASE, "server": server})
    assert message in str(exc.value)


def test_certbot_command():
    argv = C.certbot_certonly(["shop.example", "www.shop.example"], "/var/lib/garrison/acme", "a@shop.example")
    assert argv[:5] == ("certbot", "certonly", "--webroot", "-w", "/var/lib/garrison/acme")
    assert ("-d", "shop.example") == argv[5:7] and ("-d", "www.shop.example") == argv[7:9]
    assert "--non-interactive" in argv and argv[-1] == "shop.example"
