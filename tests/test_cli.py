"""The `retouch` command, run as a user runs it (a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyvips

from retouch.stores.accounts import KeyStore
from retouch.stores.db import make_engine
from tests.conftest import FIXTURES, wait_healthy


def retouch(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RETOUCH_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "retouch", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_edit_resizes_to_webp(tmp_path: Path) -> None:
    out = tmp_path / "out.webp"
    done = retouch(
        "edit",
        str(FIXTURES / "photo_large.jpg"),
        "-o",
        str(out),
        "--ops",
        '{"resizing": {"width": 800}}',
        home=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    image = pyvips.Image.new_from_file(str(out))
    assert (image.width, image.height) == (800, 533)
    assert image.get("vips-loader").startswith("webp")


def test_edit_ops_from_file_and_output_options(tmp_path: Path) -> None:
    ops = tmp_path / "ops.json"
    ops.write_text('{"padding": "10%", "background": {"color": "#000000"}}')
    out = tmp_path / "out.png"
    done = retouch(
        "edit",
        str(FIXTURES / "coffee.jpg"),
        "-o",
        str(out),
        "--ops",
        f"@{ops}",
        "--output-options",
        '{"format": {"type": "png", "compression": "fast"}}',
        home=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert pyvips.Image.new_from_file(str(out)).getpoint(2, 2)[:3] == [0, 0, 0]


def test_edit_bad_input_exit_code_and_message(tmp_path: Path) -> None:
    out = tmp_path / "x.jpg"
    done = retouch("edit", str(FIXTURES / "truncated.jpg"), "-o", str(out), home=tmp_path)
    assert done.returncode == 2
    assert "truncated or corrupt" in done.stderr
    assert not out.exists()  # never a half-written output
    done = retouch("edit", str(FIXTURES / "coffee.jpg"), "-o", str(out), "--ops", '{"padding": "x"}', home=tmp_path)
    assert done.returncode == 2 and "operations.padding" in done.stderr


def test_edit_refuses_jpegs_that_lose_pixels(tmp_path: Path) -> None:
    out = tmp_path / "x.jpg"
    bad = FIXTURES / "jpeg_defects" / "bad" / "cut_mid_scan_with_eoi.jpg"
    done = retouch("edit", str(bad), "-o", str(out), "--ops", '{"resizing": {"width": 100}}', home=tmp_path)
    assert done.returncode == 2 and "premature end of data segment" in done.stderr
    assert not out.exists()
    benign = FIXTURES / "jpeg_defects" / "benign" / "extraneous_bytes_before_dht.jpg"
    done = retouch("edit", str(benign), "-o", str(out), home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert pyvips.Image.new_from_file(str(out)).width == 451


def test_keys_create_prints_key_last_and_stores_hash(tmp_path: Path) -> None:
    done = retouch("keys", "create", "--account", "acme", "--scopes", "image_editing", home=tmp_path)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]
    assert key.startswith("rt_") and len(key) > 40
    engine = make_engine(f"sqlite:///{tmp_path / 'retouch.db'}")
    principal = KeyStore(engine).authenticate(key)
    assert principal is not None and principal.account_name == "acme"
    assert principal.scopes == frozenset({"image_editing"})
    with engine.connect() as conn:
        dump = "\n".join(str(row) for row in conn.exec_driver_sql("SELECT * FROM api_keys"))
    assert key not in dump  # stored hashed
    engine.dispose()
    bad = retouch("keys", "create", "--account", "acme", "--scopes", "admin", home=tmp_path)
    assert bad.returncode == 2 and "unknown scopes" in bad.stderr


def test_version(tmp_path: Path) -> None:
    from retouch import __version__

    done = retouch("--version", home=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == f"retouch {__version__}"


def test_serve_first_start_prints_a_working_key(tmp_path: Path) -> None:
    """The README's quick start, offline: the first key, an upload, a file in the default `local` storage, and
    a URL from a local origin listed in RETOUCH_FETCH_ALLOW_HOSTS (served by `python -m http.server`)."""
    import shutil

    import httpx

    from tests.conftest import free_port

    port, origin_port = free_port(), free_port()
    pictures = tmp_path / "Pictures"
    pictures.mkdir()
    shutil.copy(FIXTURES / "coffee.jpg", pictures / "IMG_1042.JPG")
    origin = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(origin_port), "--bind", "127.0.0.1", "--directory", str(pictures)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        **os.environ,
        "RETOUCH_HOME": str(tmp_path / "home"),
        "RETOUCH_FETCH_ALLOW_HOSTS": f"127.0.0.1:{origin_port}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "retouch", "serve", "--port", str(port), "--workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        key = lines[1].strip()
        assert key.startswith("rt_"), lines
        assert (tmp_path / "home" / "initial-api-key").read_text().strip() == key
        wait_healthy(port)
        headers = {"Authorization": f"Bearer {key}"}
        base = f"http://127.0.0.1:{port}"
        files = {"file": ("IMG_1042.JPG", (pictures / "IMG_1042.JPG").read_bytes())}
        data = {"data": '{"operations": {"resizing": {"width": 80}}, "output": {"format": "png"}}'}
        response = httpx.post(f"{base}/v1/image/edit/upload", files=files, data=data, headers=headers, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()["data"]["output"]["tmp_url"].endswith("/IMG_1042.png")
        shutil.copy(pictures / "IMG_1042.JPG", tmp_path / "home" / "storage" / "default" / "IMG_1042.JPG")
        for source in ("storage://local/IMG_1042.JPG", f"http://127.0.0.1:{origin_port}/IMG_1042.JPG"):
            body = {"input": source, "operations": {"resizing": {"width": 80}}}
            response = httpx.post(f"{base}/v1/image/edit", json=body, headers=headers, timeout=60)
            assert response.status_code == 200, (source, response.text)
            assert response.json()["data"]["output"]["width"] == 80
    finally:
        proc.terminate()
        origin.terminate()
        proc.wait(timeout=30)
        origin.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def test_user_errors_are_one_line_never_a_traceback(tmp_path: Path) -> None:
    """Issue 13: a missing @file, a worker without a broker, an output name that promises another format."""
    photo = str(FIXTURES / "coffee.jpg")
    missing = retouch("edit", photo, "-o", str(tmp_path / "o.jpg"), "--ops", "@nope.json", home=tmp_path)
    assert missing.returncode == 2 and "cannot read nope.json" in missing.stderr, missing.stderr
    worker = retouch("worker", home=tmp_path)
    assert worker.returncode == 2 and "RETOUCH_BROKER_URL" in worker.stderr, worker.stderr
    gif = retouch("edit", photo, "-o", str(tmp_path / "o.gif"), home=tmp_path)
    assert gif.returncode == 2 and "o.gif names gif, but the output would be jpeg" in gif.stderr, gif.stderr
    assert not (tmp_path / "o.gif").exists()
    mismatch = retouch(
        "edit", photo, "-o", str(tmp_path / "o.png"), "--output-options", '{"format": "webp"}', home=tmp_path
    )
    assert mismatch.returncode == 2 and not (tmp_path / "o.png").exists(), mismatch.stderr
    for answer in (missing, worker, gif, mismatch):
        assert "Traceback" not in answer.stderr + answer.stdout
    assert "--output-options" in retouch("edit", "--help", home=tmp_path).stdout


def test_keys_list_revoke_and_accounts(tmp_path: Path) -> None:
    created = retouch("keys", "create", "--account", "acme", "--expires-in", "30d", home=tmp_path)
    assert created.returncode == 0 and "expiring in 30d" in created.stdout, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    listed = retouch("keys", "list", home=tmp_path).stdout
    assert key not in listed and key[:10] + "…" in listed and listed.strip().endswith("active"), listed
    key_id = listed.strip().splitlines()[1].split("\t")[0]
    assert retouch("keys", "revoke", key_id, home=tmp_path).returncode == 0
    assert retouch("keys", "list", "--account", "acme", home=tmp_path).stdout.strip().endswith("revoked")
    assert "acme\t0\t" in retouch("accounts", "list", home=tmp_path).stdout
    bad = retouch("keys", "create", "--account", "acme", "--expires-in", "soon", home=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert retouch("keys", "revoke", "999", home=tmp_path).returncode == 2


def test_serve_announces_only_once_listening(tmp_path: Path) -> None:
    import socket

    taken = socket.create_server(("127.0.0.1", 0))
    try:
        port = taken.getsockname()[1]
        answer = retouch("serve", "--port", str(port), "--workers", "1", home=tmp_path / "home")
    finally:
        taken.close()
    assert answer.returncode != 0 and "listening" not in answer.stdout, answer.stdout
