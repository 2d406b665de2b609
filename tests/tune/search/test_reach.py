"""The services a study talks to, checked before Ray starts: a Ray cluster (--address) and an MLflow server
(--mlflow) where nothing answers are refused in one line; real sockets, a real name lookup."""

from __future__ import annotations

import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tune.search.reach import check_mlflow, check_ray_temp, check_reachable, join_cluster


def test_an_address_where_nothing_answers_is_refused_before_ray_tries_it_for_ever(
    local_ray: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    gcs = ray.get_runtime_context().gcs_address  # a head node's (what Ray makes of it is Ray's)
    check_reachable(gcs)
    check_reachable(f"ray://{gcs}")
    check_reachable(f"localhost:{gcs.rpartition(':')[2]}")  # a name, looked up
    monkeypatch.setenv("RAY_ADDRESS", "nohost.invalid:1")  # where the address comes from: named
    with pytest.raises(ValueError, match=r"^\$RAY_ADDRESS=nohost\.invalid:1: no Ray cluster answers there \(no host"):
        check_reachable("nohost.invalid:1")
    monkeypatch.delenv("RAY_ADDRESS")
    # what answers there is no Ray: a server that says nothing, an HTTP server (the dashboard's port): Ray's client
    # waited on them for ever ("Failed to get cluster ID from GCS server: TimedOut", again and again)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        with pytest.raises(ValueError, match=rf"^--address 127.0.0.1:{port}: something answers there, but no Ray"):
            check_reachable(f"127.0.0.1:{port}", timeout_s=0.5)
    web = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ValueError, match=r"answers there, but no Ray cluster \(it does not speak gRPC, as a "):
            check_reachable(f"127.0.0.1:{web.server_address[1]}")
    finally:
        web.shutdown()
    with pytest.raises(
        ValueError, match=rf"^--address 127.0.0.1:{port}: no Ray cluster answers there \(nothing listens"
    ):
        check_reachable(f"127.0.0.1:{port}")
    with pytest.raises(ValueError, match=r"\(no host named 'nohost\.invalid'\); start one with `ray start --head`"):
        check_reachable("ray://nohost.invalid:10001")
    with pytest.raises(ValueError, match=r"\(no host named 'x{64}\.example'\)"):  # a label too long to look up
        check_reachable(f"{'x' * 64}.example:6379")
    for ray_says in ("auto", "local", "::1", "anyscale://cluster"):  # a Ray here, a new one, IPv6, a module's client
        check_reachable(ray_says)
    for garbage in ("head", "garbage", "head:port", "http://127.0.0.1:8265"):  # Ray: "Invalid address format"
        with pytest.raises(ValueError, match=rf"^--address {re.escape(garbage)}: not the address of a Ray cluster: "):
            check_reachable(garbage)


def test_a_name_lookup_that_hangs_is_cut_at_the_same_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resolver that does not answer (the network's, not this code's) holds getaddrinfo for far longer than the
    check's limit: the lookup counts within it."""
    answered = threading.Event()

    def no_answer(*args: object, **kwargs: object) -> None:
        answered.wait(30)
        raise socket.gaierror("no answer")  # once the test lets go: the check's thread, left behind, ends quietly

    monkeypatch.setattr(socket, "getaddrinfo", no_answer)
    started = time.monotonic()
    try:
        with pytest.raises(
            ValueError, match=r"^--address slow\.example:6379: .*\(no answer from slow\.example:6379 in 1 s\)"
        ):
            check_reachable("slow.example:6379", timeout_s=1)
        assert time.monotonic() - started < 15  # not the resolver's 30 s
    finally:
        answered.set()


def test_an_mlflow_server_where_nothing_answers_is_refused_before_ray_starts(tmp_path: Path) -> None:
    """MLflow's client retries an unreachable server for minutes, from each stage's start; a folder is a store."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        check_mlflow(f"http://127.0.0.1:{port}")
        check_mlflow(f"http://localhost:{port}/")
    start = "`mlflow server --host 127.0.0.1 --port 5000` and give http://127.0.0.1:5000, or a folder as file:///"
    with pytest.raises(ValueError, match=rf"^--mlflow http://127.0.0.1:{port}: no MLflow server answers there "
                       rf"\(nothing listens on port {port} of 127.0.0.1\); start one with {start}"):  # fmt: skip
        check_mlflow(f"http://127.0.0.1:{port}")
    with pytest.raises(ValueError, match=r"\(no host named 'nohost\.invalid'\)"):
        check_mlflow("https://nohost.invalid")  # the scheme's port, 443
    with pytest.raises(ValueError, match=r"\(its port is not a number from 0 to 65535\)"):
        check_mlflow("http://127.0.0.1:99999")
    with pytest.raises(ValueError, match=r"\(no host in it\)"):
        check_mlflow("http:///mlruns")
    check_mlflow(str(tmp_path / "mlruns"))  # local stores: nothing to reach
    check_mlflow((tmp_path / "mlruns").as_uri())


def test_an_mlflow_server_behind_a_proxy_is_left_to_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through HTTP(S)_PROXY (a cluster whose outside hosts only a proxy reaches) this machine cannot tell."""
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    check_mlflow("http://tracking.invalid:5000")
    monkeypatch.setenv("NO_PROXY", "tracking.invalid")  # not through the proxy: checked
    with pytest.raises(ValueError, match=r"\(no host named 'tracking\.invalid'\)"):
        check_mlflow("http://tracking.invalid:5000")
    with pytest.raises(ValueError, match=r"\(no host named 'tls\.invalid'\)"):  # https has no proxy here
        check_mlflow("https://tls.invalid")


def test_joining_auto_where_no_cluster_runs_says_so_in_one_line(own_ray: None) -> None:
    import psutil

    if any(process.info["name"] == "gcs_server" for process in psutil.process_iter(["name"])):
        pytest.skip("a Ray runs on this machine (another user's, or `ray start`): auto joins it")
    with pytest.raises(ConnectionError, match=r"^--address auto: no Ray cluster runs on this machine \(`ray start"):
        join_cluster("auto")  # Ray's: "Could not find any running Ray instance. Please specify the one to connect..."


def test_the_folder_a_local_ray_keeps_its_session_in_is_named_with_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray named the path alone, or said "validate_socket_filename failed: AF_UNIX path length cannot exceed 107
    bytes" for a $TMPDIR as deep as a cluster job's scratch folder."""
    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    deep = tmp_path / ("scratch-of-a-job-" * 3) / "tmp"
    deep.mkdir(parents=True)
    (tmp_path / "file").write_text("")
    cases = [
        ("TMPDIR", deep, rf"^\$TMPDIR {deep}: too long a path for a local Ray's sockets \(1\d\d bytes under it, "),
        ("RAY_TMPDIR", tmp_path / "file", rf"^\$RAY_TMPDIR {tmp_path / 'file'}: a file, where a folder is needed \("),
        ("RAY_TMPDIR", tmp_path / "none", rf"^\$RAY_TMPDIR {tmp_path / 'none'}: no such folder \("),
    ]
    for name, folder, said in cases:
        monkeypatch.setenv(name, str(folder))
        with pytest.raises(ValueError, match=said):
            check_ray_temp()
    monkeypatch.setenv("RAY_TMPDIR", "/tmp")  # RAY_TMPDIR first, as Ray reads them
    check_ray_temp()
