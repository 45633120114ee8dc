"""Transports: quoting, privilege wrapping, argv building, secrets, and the local backend
exercised with real harmless commands."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from halb.errors import InputError, TransportError
from halb.inventory import Host
from halb.transport import BACKENDS, batch, chain, for_host, quote, sh, split_batch
from halb.transport.base import _SKIP_TO_MARKER, MASK, Privilege, privilege_for
from halb.transport.local import LocalTransport
from halb.transport.netns import NetnsTransport
from halb.transport.ssh import SshTransport

SECRET = "pa ss'w\"rd$(id)"
BECOME = "b3come-S3cret"


def local() -> LocalTransport:
    return LocalTransport("here", Privilege("none"))


# --------------------------------------------------------------------------- quoting

printable = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


@given(st.lists(printable, min_size=1, max_size=6))
def test_quote_round_trips_through_a_shell_parser(argv: list[str]) -> None:
    assert shlex.split(quote(argv)) == argv


def test_quote_runs_exactly_argv_in_a_real_shell() -> None:
    argv = ["printf", "%s|", "a b", "$(id)", "'q'", '"d"', "`x`", "*", ""]
    out = subprocess.run(["sh", "-c", quote(argv)], capture_output=True, check=True).stdout
    assert out == b"a b|$(id)|'q'|\"d\"|`x`|*||"


def test_sh_passes_values_as_positional_parameters() -> None:
    res = local().run(sh('printf "%s|" "$@"', "a b", "$(id)"))
    assert res.out == "a b|$(id)|"


# ---------------------------------------------------------------------------- privilege


def test_privilege_choice() -> None:
    assert privilege_for("root", BECOME, is_root=False).mode == "none"
    assert privilege_for("deploy", None, is_root=True).mode == "none"
    assert privilege_for("deploy", None, is_root=False).mode == "sudo"
    p = privilege_for("deploy", BECOME, is_root=False)
    assert p.mode == "sudo-password"
    assert BECOME not in repr(p)


def test_sudo_n_wraps_without_touching_stdin() -> None:
    argv, data = Privilege("sudo").wrap(["id", "-u"], b"x")
    assert argv == ["sudo", "-n", "--", "id", "-u"]
    assert data == b"x"


def test_sudo_password_goes_on_stdin_never_in_argv() -> None:
    argv, data = Privilege("sudo-password", BECOME).wrap(["cat"], b"payload")
    assert argv[:6] == ["sudo", "-k", "-S", "-p", "", "--"]
    assert not any(BECOME in a for a in argv)
    assert data is not None and data.startswith(BECOME.encode() + b"\n")
    assert data.endswith(b"payload")


@pytest.mark.parametrize("payload", [b"", b"line\n", b"no newline", bytes(range(256)) * 4])
def test_marker_skip_delivers_exact_stdin(payload: bytes) -> None:
    """Under NOPASSWD sudo does not read the password: the marker loop must drop it."""
    _, data = Privilege("sudo-password", BECOME).wrap(["cat"], payload)
    res = local().run(sh(_SKIP_TO_MARKER, "cat"), input=data)
    assert res.stdout == payload


def test_marker_skip_after_sudo_consumed_the_password() -> None:
    _, data = Privilege("sudo-password", BECOME).wrap(["cat"], b"payload\n")
    assert data is not None
    after_sudo = data.split(b"\n", 1)[1]  # what sudo leaves after reading its line
    assert local().run(sh(_SKIP_TO_MARKER, "cat"), input=after_sudo).stdout == b"payload\n"


# ---------------------------------------------------------------------------- ssh argv


def ssh(**kw: object) -> SshTransport:
    args: dict[str, object] = {"port": 2222, "user": "ops"}
    args.update(kw)
    return SshTransport("lb1", "10.9.0.11", **args)  # type: ignore[arg-type]


def test_ssh_argv_key_auth_is_batch_mode_with_private_control_dir() -> None:
    t = ssh(private_key_file="~/.ssh/k", common_args=["-o", "StrictHostKeyChecking=yes"])
    try:
        argv = t.ssh_argv()
        assert argv[0] == "ssh"
        assert "BatchMode=yes" in argv
        assert "ControlMaster=auto" in argv and "ControlPersist=60s" in argv
        cp = next(a for a in argv if a.startswith("ControlPath="))
        d = Path(cp.removeprefix("ControlPath=")).parent
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
        assert argv[argv.index("-p") + 1] == "2222"
        assert argv[argv.index("-l") + 1] == "ops"
        assert argv[argv.index("-i") + 1] == os.path.expanduser("~/.ssh/k")
        assert "StrictHostKeyChecking=yes" in argv
        assert argv[-2:] == ["--", "10.9.0.11"]
        assert "-F" not in argv  # the user's ssh config applies
        assert t._env() is None
    finally:
        t.close()
    assert not d.exists()


def test_ssh_password_only_in_child_environment() -> None:
    t = ssh(password=SECRET, become_password=BECOME)
    try:
        full = t._wrap(["cat", "/etc/haproxy/haproxy.cfg"])
        assert full[:2] == ["sshpass", "-e"]
        assert "BatchMode=yes" not in full
        for a in full:
            assert SECRET not in a and BECOME not in a
        assert SECRET not in repr(t) and BECOME not in repr(t)
        env = t._env()
        assert env is not None and env["SSHPASS"] == SECRET
        assert "SSHPASS" not in os.environ
        # the remote command is one shell-quoted string after the destination
        assert full[-1] == "cat /etc/haproxy/haproxy.cfg"
    finally:
        t.close()


class _EchoingSsh(SshTransport):
    """ssh replaced by a shell that fails the way ssh does and repeats the password."""

    def ssh_argv(self, extra: Sequence[str] = ()) -> list[str]:
        return ["sh", "-c", 'echo "auth failed for $SSHPASS" >&2; exit 255', "sh"]


def test_ssh_errors_name_the_host_and_never_carry_the_password() -> None:
    t = _EchoingSsh("lb2", "10.9.0.12", user="root", password=SECRET)
    with pytest.raises(TransportError) as ei:
        t.run(["true"])
    msg = str(ei.value)
    assert msg.startswith("lb2: ssh to root@10.9.0.12:22 failed")
    assert SECRET not in msg and MASK in msg  # the child did get it, through the env
    assert ei.value.host == "lb2"
    t.close()


# ------------------------------------------------------------------------------ local


def test_local_run_input_and_rc() -> None:
    t = local()
    assert t.run(["cat"], input=b"abc").stdout == b"abc"
    res = t.run(["sh", "-c", "echo oops >&2; exit 3"])
    assert (res.rc, res.err, res.ok) == (3, "oops\n", False)


def test_local_check_raises_with_tool_message() -> None:
    with pytest.raises(TransportError, match=r"^here: sh -c .* exited 3: oops"):
        local().run(["sh", "-c", "echo oops >&2; exit 3"], check=True)


def test_local_timeout_kills_the_whole_process_group() -> None:
    with pytest.raises(TransportError, match=r"timed out after 0\.3s"):
        local().run(["sh", "-c", "sleep 30 & sleep 30"], timeout=0.3)


def test_missing_program_is_a_transport_error() -> None:
    with pytest.raises(TransportError, match="cannot start"):
        local().run(["/nonexistent/halb-x"])


def test_put_get_exact_path_and_mode(tmp_path: Path) -> None:
    t = local()
    p = tmp_path / "secret.conf"
    t.put(str(p), b"auth_pass x\n", 0o600)
    assert p.read_bytes() == b"auth_pass x\n"
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    t.put(str(p), b"new\n", 0o644)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    assert t.get(str(p)) == b"new\n"
    with pytest.raises(TransportError, match="No such file"):
        t.get(str(tmp_path / "absent"))


def test_netns_wraps_with_nsenter() -> None:
    t = NetnsTransport("lb1", "halb-x-lb1", "/run/halb/x/lb1.mnt")
    assert t._wrap(["ip", "addr"]) == [
        "nsenter", "--net=/run/netns/halb-x-lb1", "--mount=/run/halb/x/lb1.mnt", "--", "ip", "addr",
    ]  # fmt: skip


# ----------------------------------------------------------------------------- factory


def host(**v: object) -> Host:
    return Host("lb1", {"ansible_host": "10.9.0.11", **v})


def test_factory_picks_by_ansible_connection() -> None:
    t = for_host(host(ansible_port=2201, ansible_ssh_common_args="-o 'ProxyJump=j h'"))
    assert isinstance(t, SshTransport)
    assert t.port == 2201 and t.common_args == ("-o", "ProxyJump=j h")
    assert isinstance(for_host(host(ansible_connection="smart")), SshTransport)
    assert isinstance(for_host(host(ansible_connection="local")), LocalTransport)
    assert isinstance(for_host(host(ansible_connection="netns", halb_netns="n")), NetnsTransport)
    t.close()


def test_factory_unknown_connection_lists_valid_ones() -> None:
    with pytest.raises(InputError) as ei:
        for_host(host(ansible_connection="docker"))
    assert "lb1" in str(ei.value) and "'docker'" in str(ei.value)
    for name in BACKENDS:
        assert name in str(ei.value)


def test_factory_bad_common_args_is_input_error() -> None:
    with pytest.raises(InputError, match="ansible_ssh_common_args"):
        for_host(host(ansible_ssh_common_args="-o 'unclosed"))


# ----------------------------------------------------------------- batch, first command


def test_batch_runs_each_command_and_splits_status_and_output() -> None:
    argv, marker = batch(
        [["printf", "a b\n"], ["sh", "-c", "printf x; exit 3"], ["cat"], ["printf", "$(id)"]]
    )
    res = local().run(argv, input=b"not for them")
    parts = split_batch(res.out, marker, 4)
    assert parts == [(0, "a b\n"), (3, "x"), (0, ""), (0, "$(id)")]
    assert split_batch(res.out, marker, 5) is None  # cut short
    assert split_batch(res.out.replace(marker, "--halb-other--"), marker, 1) is None


def test_chain_stops_at_the_first_failure_and_merges_stderr() -> None:
    argv, marker = chain(
        [
            ["sh", "-c", "echo out; echo err >&2"],
            ["cat"],
            ["sh", "-c", "echo bad >&2; exit 255"],
            ["sh", "-c", "echo never"],
        ]
    )
    res = local().run(argv, input=b"not for them")
    assert res.rc == 1  # not 255: that would read as a lost SSH link
    parts = split_batch(res.out, marker, None)
    assert parts == [(0, "out\nerr\n"), (0, ""), (255, "bad\n")]
    assert "never" not in res.out
    argv, marker = chain([["true"], ["printf", "x"]])
    assert split_batch(local().run(argv).out, marker, None) == [(0, ""), (0, "x")]
    assert split_batch("cut", marker, None) == []


class _LocalSsh(SshTransport):
    """ssh replaced by a local shell that runs the remote command line, with `id` faked
    when `uid` is given; every connection made is counted."""

    def __init__(self, tmp: Path, uid: int | None = None, **kw: object) -> None:
        super().__init__("lb1", "10.9.0.11", **kw)  # type: ignore[arg-type]
        self.calls = tmp / "calls"
        self.bin = tmp / "bin"
        self.bin.mkdir(exist_ok=True)
        if uid is not None:
            fake = self.bin / "id"
            fake.write_text(f"#!/bin/sh\necho {uid}\n")
            fake.chmod(0o755)

    def ssh_argv(self, extra: Sequence[str] = ()) -> list[str]:
        path = f"{self.bin}:{os.environ['PATH']}"
        script = f'echo >> {shlex.quote(str(self.calls))}; PATH={shlex.quote(path)} eval "$1"'
        return ["sh", "-c", script, "sh", *extra]

    def connections(self) -> int:
        return len(self.calls.read_text().splitlines()) if self.calls.exists() else 0


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the login is this user: root")


@needs_root
def test_first_command_as_root_needs_no_separate_id_round_trip(tmp_path: Path) -> None:
    t = _LocalSsh(tmp_path)
    res = t.run(["sh", "-c", "printf 'out'; printf 'err' >&2; exit 4"])
    assert (res.rc, res.out, res.err) == (4, "out", "err")  # its own failure, not the link's
    assert t.connections() == 1 and t.privilege.mode == "none"
    assert t.run(["printf", "y"]).out == "y" and t.connections() == 2
    (tmp_path / "fresh").mkdir()
    with pytest.raises(TransportError, match=r"^lb1: false exited 1"):
        _LocalSsh(tmp_path / "fresh").run(["false"], check=True)  # named as asked, first call


@needs_root
def test_first_long_running_command_as_root_keeps_its_own_output(tmp_path: Path) -> None:
    t = _LocalSsh(tmp_path)
    proc = t.popen(sh("echo locked; echo more; exec cat >/dev/null"))
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline() == b"locked\n"  # the hello's line was taken off
    assert proc.stdout.readline() == b"more\n"
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0
    assert t.connections() == 1


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("sudo"), reason="needs root and sudo")
def test_first_command_as_another_user_settles_sudo_then_runs(tmp_path: Path) -> None:
    t = _LocalSsh(tmp_path, uid=1000, user="ops")
    res = t.run(["printf", "z"])
    assert res.out == "z" and t.privilege.mode == "sudo"
    # the hello (the command did not run), sudo's check, then the command through sudo
    assert t.connections() == 3
    (tmp_path / "fresh").mkdir()
    proc = _LocalSsh(tmp_path / "fresh", uid=1000, user="ops").popen(
        sh("echo locked; exec cat >/dev/null")
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"locked\n"
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=10)
