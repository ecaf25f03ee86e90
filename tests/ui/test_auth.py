"""``pagesight serve --auth``: Gradio's login page in front of the app, through the real server."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

import pytest

from pagesight.errors import ConfigurationError
from pagesight.ui.command import add_serve_parser, parse_auth


def _login(base: str, user: str, password: str) -> tuple[int, int]:
    """Log in on the real /login route; return (login status, /config status with the cookie)."""
    import httpx

    with httpx.Client(base_url=base, timeout=30) as client:
        login = client.post("/login", data={"username": user, "password": password})
        return login.status_code, client.get("/config").status_code


def test_parse_auth_reads_flags_files_and_env_and_never_echoes_a_password(tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("# team\nbob:pa:ss:word\n\n  carol:x y\n", encoding="utf-8")
    pairs = parse_auth(["alice:s3cret"], [users], "dave:d1\neve:e2\n")
    assert pairs == [
        ("alice", "s3cret"),
        ("bob", "pa:ss:word"),
        ("carol", "x y"),
        ("dave", "d1"),
        ("eve", "e2"),
    ]
    for bad in ("alice", ":nouser", "alice:"):
        with pytest.raises(ConfigurationError, match="--auth: expected USER:PASSWORD") as info:
            parse_auth([bad])
        assert "nouser" not in str(info.value)
    users.write_text("ok:1\nhunter2\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"users.txt, line 2") as info:
        parse_auth(files=[users])
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigurationError, match="--auth-file .*missing.txt: cannot read it"):
        parse_auth(files=[tmp_path / "missing.txt"])


def test_serve_parser_takes_repeatable_auth_flags():
    parser = argparse.ArgumentParser(prog="pagesight")
    add_serve_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--auth", "a:1", "--auth", "b:2", "--auth-file", "f.txt"])
    assert args.auth == ["a:1", "b:2"] and args.auth_file == ["f.txt"]
    assert parser.parse_args(["serve"]).auth is None


@pytest.mark.enable_socket
def test_launch_with_auth_refuses_requests_until_login(tmp_path):
    import httpx

    from pagesight.ui.app import build_app, launch

    demo = build_app(tmp_path / "store")
    url = launch(demo, "127.0.0.1", 0, block=False, quiet=True, auth=[("alice", "s3:cret")])
    base = url.rstrip("/")
    try:
        assert httpx.get(base + "/config", timeout=30).status_code == 401
        assert httpx.get(base + "/gradio_api/info", timeout=30).status_code == 401
        upload = httpx.post(base + "/gradio_api/upload", files={"files": ("a.pdf", b"%PDF-x")}, timeout=30)
        assert upload.status_code == 401
        assert _login(base, "alice", "wrong") == (400, 401)
        assert _login(base, "alice", "s3:cret") == (200, 200)
    finally:
        demo.close()


@pytest.mark.enable_socket
def test_pagesight_serve_auth_flags_file_and_env_through_the_command(tmp_path):
    """The installed command, as a user runs it: every source of users can log in, nobody else."""
    users = tmp_path / "users.txt"
    users.write_text("bob:from-file\n", encoding="utf-8")
    env = {**os.environ, "PAGESIGHT_AUTH": "carol:from-env"}
    cmd = [sys.executable, "-m", "pagesight", "serve", "--store", str(tmp_path / "store"), "--port", "0"]
    cmd += ["--host", "127.0.0.1", "--auth", "alice:from-flag", "--auth-file", str(users)]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert proc.stderr is not None
        lines = []
        while True:  # wait for the "serving at" line (the process ends on failure)
            line = proc.stderr.readline()
            if not line:
                pytest.fail("pagesight serve exited early:\n" + "".join(lines))
            lines.append(line)
            if "serving at" in line:
                break
        found = re.search(r"serving at (http://\S+?)/?; login required \(3 user\(s\)\)", line)
        assert found, line
        base = found.group(1)
        assert "from-flag" not in "".join(lines) and "from-file" not in "".join(lines)
        import httpx

        assert httpx.get(base + "/config", timeout=30).status_code == 401
        assert _login(base, "alice", "from-flag") == (200, 200)
        assert _login(base, "bob", "from-file") == (200, 200)
        assert _login(base, "carol", "from-env") == (200, 200)
        assert _login(base, "carol", "from-flag") == (400, 401)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_no_auth_warning_points_to_auth():
    """``serve --host 0.0.0.0`` without users still warns, and says how to add them."""
    from pagesight.ui.command import no_auth_warning

    warning = no_auth_warning("0.0.0.0")
    assert warning is not None and "--auth USER:PASSWORD" in warning
