"""`gdfr train` from the tfds catalog without a network (issue 22, item 5): one line in seconds; signals at once.

The network is simulated with an https proxy on this host: a closed port (offline: the
connection is refused) or a socket that accepts and never answers (a download that hangs).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.test_training import REPO

pytest.importorskip("tensorflow_datasets")

SMALL = ["--variant", "tiny", "--epochs", "1"]


def offline_env(tmp_path, proxy_port: int) -> dict:
    import os

    proxy = f"http://127.0.0.1:{proxy_port}"
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "https_proxy", "http_proxy")}
    return {**env, "KERAS_BACKEND": "torch", "PYTHONPATH": str(REPO), "TFDS_DATA_DIR": str(tmp_path / "tfds"),
            "HTTPS_PROXY": proxy, "HTTP_PROXY": proxy}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unprepared_tfds_dataset_offline_fails_in_seconds(tmp_path):
    port = closed_port()
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "keras_gdfr.cli", "train", "recipes/cifar10.toml", *SMALL,
                             "--run-dir", str(tmp_path / "run")], env=offline_env(tmp_path, port), cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        "error: tfds dataset 'cifar10' is not prepared in the tfds default data_dir and needs a download, "
        f"but the proxy 127.0.0.1:{port} does not answer (Connection refused): connect to the internet, "
        "or pass --data with an ImageFolder / archive / prepared tfds data_dir")
    assert took < 60, took  # imports included; tfds's own retries took minutes
    assert not (tmp_path / "run").exists()  # a failed start leaves nothing


def test_sigterm_while_the_dataset_downloads_ends_the_run_at_once(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []

    def accept_and_stay_silent():
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept_and_stay_silent, daemon=True).start()
    run_dir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "keras_gdfr.cli", "train", "recipes/cifar10.toml", *SMALL,
                                "--run-dir", str(run_dir)], env=offline_env(tmp_path, server.getsockname()[1]),
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(accepted) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # the first connection is the probe, the second tfds's download
        assert len(accepted) >= 2, process.communicate(timeout=5)
        sent = time.monotonic()
        process.terminate()
        _, stderr = process.communicate(timeout=30)
        assert time.monotonic() - sent < 15
    finally:
        process.kill()
        server.close()
    assert process.returncode == 130, stderr[-2000:]
    log = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "run_end" and log[-1]["status"] == "interrupted" and log[-1]["epoch"] == 0
