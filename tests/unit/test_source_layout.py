"""Which files make a release, its hash and archive; the host layout; nginx's check config."""

from __future__ import annotations

import io
import tarfile

from garrison import source
from garrison.config import parse_config
from garrison.layout import Layout, other_slot
from garrison.render import nginx_check_main


def _tree(tmp_path):
    (tmp_path / "main.py").write_text("app = 1\n")
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "a.css").write_text("body{}")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").write_text("")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "secret.log").write_text("x")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "out.txt").write_text("x")
    (tmp_path / ".gitignore").write_text("*.log\nbuild/\n# comment\n")
    return tmp_path


def test_app_files_respect_gitignore_and_never_ship_venv_or_bytecode(tmp_path):
    files = source.app_files(_tree(tmp_path))
    assert files == [".gitignore", "main.py", "static/a.css"]


def test_content_hash_changes_with_content_only(tmp_path):
    root = _tree(tmp_path)
    files = source.app_files(root)
    h1 = source.content_hash(root, files)
    assert source.content_hash(root, files) == h1
    (root / "main.py").write_text("app = 2\n")
    assert source.content_hash(root, files) != h1


def test_archive_holds_the_files_owned_by_root(tmp_path):
    root = _tree(tmp_path)
    data = source.archive(root, source.app_files(root))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {".gitignore", "main.py", "static/a.css"}
    assert all(m.uid == 0 and m.mode == 0o644 for m in members.values())


def test_requirements_hash(tmp_path):
    (tmp_path / "r.txt").write_text("flask\n")
    a = source.requirements_hash(tmp_path, "r.txt", "/usr/bin/python3", ("gunicorn",))
    assert a == source.requirements_hash(tmp_path, "r.txt", "/usr/bin/python3", ("gunicorn",))
    assert a != source.requirements_hash(tmp_path, "r.txt", "/usr/bin/python3.12", ("gunicorn",))
    (tmp_path / "r.txt").write_text("flask\nrequests\n")
    assert a != source.requirements_hash(tmp_path, "r.txt", "/usr/bin/python3", ("gunicorn",))


def test_layout_paths_and_slots():
    cfg = parse_config({"app": {"name": "shop", "entry": "main:app"}})
    L = Layout.of(cfg)
    assert L.base == "/srv/shop" and L.current == "/srv/shop/current"
    assert L.bind_address("green") == "unix:/srv/shop/run/green.sock"
    assert L.nginx_site == "/etc/nginx/sites-available/shop.conf"
    assert Layout.of(cfg, root="/tmp/x").nginx_site == "/tmp/x/etc/nginx/sites-available/shop.conf"
    tcp = Layout.of(parse_config({"app": {"name": "shop", "entry": "m:a"}, "gunicorn": {"bind": "127.0.0.1:9000"}}))
    assert tcp.bind_address("blue") == "127.0.0.1:9000" and tcp.bind_address("green") == "127.0.0.1:9001"
    assert other_slot("blue") == "green" and other_slot("green") == "blue"


def test_nginx_check_main_points_sites_enabled_elsewhere():
    main = "http {\n    include /etc/nginx/conf.d/*.conf;\n    include /etc/nginx/sites-enabled/*;\n}\n"
    out = nginx_check_main(main, "/etc/nginx/sites-enabled", "/etc/nginx/.check")
    assert "include /etc/nginx/.check/*;" in out and "conf.d" in out
    assert nginx_check_main("http { include /etc/nginx/conf.d/*.conf; }", "/etc/nginx/sites-enabled", "/x") is None
