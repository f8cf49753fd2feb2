"""The strict fake host and the fake clock of tests/fakehost.py, tested themselves.

Other unit tests trust them to fail on a command nobody expected and to behave
like a real host's file tree under the Executor's helpers; these tests hold
them to that.
"""

from __future__ import annotations

import io
import tarfile
from datetime import UTC, datetime, timedelta

import pytest

from garrison.errors import CommandFailed, LockHeld
from tests.fakehost import FakeClock, FakeHost, Reply, UnexpectedCommand

# -- strictness --------------------------------------------------------------------------


def test_a_command_nobody_expected_fails_naming_its_argv():
    host = FakeHost("web1")
    with pytest.raises(UnexpectedCommand, match=r"fake host web1: unexpected command \('rm', '-rf', '/'\)"):
        host.run(("rm", "-rf", "/"))
    assert host.ran == [("rm", "-rf", "/")]


def test_assert_done_reraises_an_unexpected_command_the_code_swallowed():
    host = FakeHost()
    try:
        host.run(("reboot",))
    except Exception:
        pass  # as careless product code might
    with pytest.raises(UnexpectedCommand, match="reboot"):
        host.assert_done()


def test_exact_argv_does_not_match_a_longer_one_but_a_prefix_does():
    host = FakeHost()
    host.expect(("ufw", "status"), stdout="Status: active\n", times=None)
    host.expect(("ufw", "allow", ...), times=None)
    assert host.run(("ufw", "status")).stdout == "Status: active\n"
    assert host.run(("ufw", "allow", "80/tcp")).ok and host.run(("ufw", "allow", "443/tcp")).ok
    with pytest.raises(UnexpectedCommand, match="verbose"):
        host.run(("ufw", "status", "verbose"))


def test_times_are_counted_and_repeated_expectations_answer_in_order():
    host = FakeHost()
    host.expect(("cat", "/x"), stdout="one")
    host.expect(("cat", "/x"), stdout="two")
    assert [host.run(("cat", "/x")).stdout for _ in range(2)] == ["one", "two"]
    with pytest.raises(UnexpectedCommand, match=r"ran more often than expected: \('cat', '/x'\)"):
        host.run(("cat", "/x"))


def test_assert_done_names_what_was_expected_but_never_ran():
    host = FakeHost()
    host.expect(("nginx", "-t"))
    host.expect(("nginx", "-s", "reload"), times=2)
    host.expect(("true",), times=None)  # optional: never "left"
    host.run(("nginx", "-t"))
    host.run(("nginx", "-s", "reload"))
    with pytest.raises(AssertionError, match=r"expected but not run: nginx -s reload \(1 of 2 times\)$"):
        host.assert_done()
    host.run(("nginx", "-s", "reload"))
    host.assert_done()


def test_exit_status_raises_under_check_and_is_returned_without():
    host = FakeHost()
    host.expect(("visudo", "-cf", ...), rc=1, stderr="parse error", times=2)
    with pytest.raises(CommandFailed, match="parse error"):
        host.run(("visudo", "-cf", "/etc/sudoers.d/x"))
    res = host.run(("visudo", "-cf", "/etc/sudoers.d/x"), check=False)
    assert (res.returncode, res.stderr) == (1, "parse error")


def test_a_responder_sees_argv_and_input_and_may_change_the_host():
    host = FakeHost()

    def useradd(argv, input):
        host.add_file("/etc/passwd", f"{argv[-1]}:x:1000:1000::/home/{argv[-1]}:/bin/bash\n")
        return Reply(stdout=f"got {input!r}")

    host.expect(("useradd", ...), respond=useradd)
    res = host.run(("useradd", "deploy"), input=b"hi", env={"LC_ALL": "C"})
    assert res.stdout == "got b'hi'"
    assert host.read_file("/etc/passwd").startswith(b"deploy:x:1000")
    assert host.calls[-1].input == b"hi" and host.calls[-1].env == {"LC_ALL": "C"}


def test_expect_refuses_non_string_argv():
    with pytest.raises(TypeError):
        FakeHost().expect(("kill", "-HUP", 77))


# -- the Executor's helpers on the in-memory tree ------------------------------------------------


def test_ensure_dir_creates_owns_and_then_changes_nothing():
    host = FakeHost()
    assert host.ensure_dir("/srv/shop/run", mode=0o2750, owner="shop", group="www-data")
    st = host.stat("/srv/shop/run")
    assert (st.is_dir, st.mode, st.owner, st.group) == (True, 0o2750, "shop", "www-data")
    assert host.ran == [("mkdir", "-p", "/srv/shop/run"), ("chown", "shop:www-data", "/srv/shop/run"), ("chmod", "2750", "/srv/shop/run")]
    assert host.stat("/srv/shop").is_dir  # mkdir -p made the parents
    host.ran.clear()
    assert not host.ensure_dir("/srv/shop/run", mode=0o2750, owner="shop", group="www-data")
    assert host.ran == []
    assert host.ensure_dir("/srv/shop/run", mode=0o2750, owner="root", group="www-data")
    assert host.stat("/srv/shop/run").owner == "root"


def test_ensure_dir_refuses_a_file_in_the_way():
    host = FakeHost()
    host.add_file("/srv/shop", b"oops")
    with pytest.raises(CommandFailed, match="exists and is not a folder"):
        host.ensure_dir("/srv/shop")


def test_ensure_symlink_points_atomically_and_reads_follow_it():
    host = FakeHost()
    host.add_file("/srv/a/releases/r1/app.py", b"v1")
    host.add_file("/srv/a/releases/r2/app.py", b"v2")
    assert host.ensure_symlink("releases/r1", "/srv/a/current")
    assert host.ran == [("ln", "-sfn", "releases/r1", "/srv/a/.current.garrison-tmp"), ("mv", "-Tf", "/srv/a/.current.garrison-tmp", "/srv/a/current")]
    st = host.stat("/srv/a/current")
    assert (st.is_link, st.link_target) == (True, "releases/r1")
    assert host.read_file("/srv/a/current/app.py") == b"v1"  # through the link, relative to its folder
    assert host.stat("/srv/a/current/app.py").mode == 0o644
    assert not host.ensure_symlink("releases/r1", "/srv/a/current")
    assert host.ensure_symlink("/srv/a/releases/r2", "/srv/a/current")
    assert host.read_file("/srv/a/current/app.py") == b"v2"
    assert host.stat("/srv/a/.current.garrison-tmp") is None


def test_remove_takes_a_whole_tree_and_only_it():
    host = FakeHost()
    host.add_file("/srv/a/releases/r1/app.py")
    host.add_file("/srv/a/releases/r10/app.py")
    assert host.remove("/srv/a/releases/r1")
    assert host.stat("/srv/a/releases/r1/app.py") is None and host.stat("/srv/a/releases/r1") is None
    assert host.read_file("/srv/a/releases/r10/app.py") == b""
    assert not host.remove("/srv/a/releases/r1")
    assert host.ran == [("rm", "-rf", "--", "/srv/a/releases/r1")]


def test_which_finds_executables_on_the_hosts_path():
    host = FakeHost()
    host.add_program("/usr/sbin/ufw")
    host.add_file("/usr/bin/notes", b"", mode=0o644)
    assert host.which("ufw") == "/usr/sbin/ufw"
    assert host.which("notes") is None
    assert host.which("sudo") is None


def test_ensure_file_writes_then_sees_its_own_file_then_fixes_the_mode():
    host = FakeHost()
    assert host.ensure_file("/etc/sudoers.d/garrison-deploy", b"x\n", mode=0o440)
    assert not host.ensure_file("/etc/sudoers.d/garrison-deploy", b"x\n", mode=0o440)
    host.node("/etc/sudoers.d/garrison-deploy").mode = 0o644
    assert host.ensure_file("/etc/sudoers.d/garrison-deploy", b"x\n", mode=0o440)
    assert host.stat("/etc/sudoers.d/garrison-deploy").mode == 0o440
    assert host.ran == []  # write_file and stat are primitives, not commands


def test_write_file_replaces_a_symlink_instead_of_writing_through_it():
    host = FakeHost()
    host.add_file("/etc/real", b"keep")
    host.add_symlink("/etc/link", "/etc/real")
    host.write_file("/etc/link", b"new")
    assert host.read_file("/etc/real") == b"keep"
    assert not host.stat("/etc/link").is_link and host.read_file("/etc/link") == b"new"


def test_mv_f_renames_a_file_over_another():
    host = FakeHost()
    host.add_file("/etc/sudoers.d/.new", b"rule", mode=0o440)
    host.add_file("/etc/sudoers.d/rule", b"old")
    host.run(("mv", "-f", "/etc/sudoers.d/.new", "/etc/sudoers.d/rule"))
    assert host.read_file("/etc/sudoers.d/rule") == b"rule" and host.stat("/etc/sudoers.d/.new") is None


def test_chown_of_a_missing_path_fails_like_chown():
    host = FakeHost()
    with pytest.raises(CommandFailed, match="No such file or directory"):
        host.run(("chown", "a:b", "/nope"))


def test_a_folder_behind_a_symlinked_parent_is_one_folder():
    host = FakeHost()
    host.add_dir("/srv/a/releases/r1")
    host.add_symlink("/srv/a/slots/blue", "../releases/r1")
    host.ensure_dir("/srv/a/slots/blue/static")
    assert host.stat("/srv/a/releases/r1/static").is_dir


def test_extract_tar_unpacks_with_the_umask_and_refuses_escapes():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data, mode in (("app.py", b"print(1)", 0o664), ("bin/run", b"#!/bin/sh", 0o775)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("latest")
        link.type, link.linkname = tarfile.SYMTYPE, "app.py"
        tar.addfile(link)
    host = FakeHost()
    host.add_dir("/srv/a/releases/r1")
    host.extract_tar(buf.getvalue(), "/srv/a/releases/r1")
    assert host.read_file("/srv/a/releases/r1/app.py") == b"print(1)"
    assert host.stat("/srv/a/releases/r1/app.py").mode == 0o644
    assert host.stat("/srv/a/releases/r1/bin/run").mode == 0o755
    assert host.read_file("/srv/a/releases/r1/latest") == b"print(1)"
    assert host.ran[-1][0] == "tar"

    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../etc/passwd")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(CommandFailed, match="outside"):
        host.extract_tar(evil.getvalue(), "/srv/a/releases/r1")
    assert host.stat("/srv/etc/passwd") is None
    with pytest.raises(CommandFailed, match="Cannot open"):
        host.extract_tar(buf.getvalue(), "/srv/missing")


def test_the_lock_is_exclusive_names_its_holder_and_is_released():
    host = FakeHost()
    lock = host.lock("/srv/a/.garrison.lock", "deploy by alice")
    with pytest.raises(LockHeld, match="deploy by alice"):
        host.lock("/srv/a/.garrison.lock", "deploy by bob")
    lock.release()
    with host.lock("/srv/a/.garrison.lock", "deploy by bob"):
        assert host.read_file("/srv/a/.garrison.lock") == b"deploy by bob"
    assert host.read_file("/srv/a/.garrison.lock") == b""


def test_relative_paths_are_a_test_bug():
    with pytest.raises(AssertionError, match="relative path"):
        FakeHost().stat("srv/a")


# -- the fake clock ------------------------------------------------------------------------------


def test_fake_clock_sleeps_instantly_and_moves_both_clocks():
    clock = FakeClock(start=50.0, wall=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    clock.sleep(2.5)
    clock.advance(0.5)
    clock.sleep(0)
    assert clock.monotonic() == 53.0
    assert clock.now() == datetime(2026, 3, 1, 12, 0, 3, tzinfo=UTC)
    assert clock.now().utcoffset() == timedelta(0)
    assert clock.slept == [2.5, 0]
    with pytest.raises(ValueError):
        clock.sleep(-1)
