"""The services a study talks to, checked before Ray starts: a Ray cluster (--address) and an MLflow server
(--mlflow) where nothing answers are refused in one line, where each would otherwise be retried for minutes (Ray
for ever, logging a warning every few seconds; MLflow's client 7 times with backoff, from each stage's start, with
Ray already running). And joining a cluster where its token authentication needs saying, and the folder a local Ray
keeps its session in."""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

from data.files import not_a


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuse an --address HOST:PORT (or ray://HOST:PORT) where nothing answers within `timeout_s`, name lookup
    included, or where what answers is no Ray cluster (Ray's client waited on it for ever), and one of no form Ray
    takes. `auto`, `local`, a bare IPv6 address and `module://...` are Ray's. Named as $RAY_ADDRESS where it is that."""
    flag = "$RAY_ADDRESS=" if os.environ.get("RAY_ADDRESS") == address else "--address "
    if address in ("auto", "local") or ("://" in address and not address.startswith(("ray://", "http://", "https://"))):
        return  # (Ray hands another `module://...` to that module's client)
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if ":" in host and not host.startswith("[") and "/" not in host:  # a bare IPv6 address: Ray's to judge
        return
    if not host or not port.isdigit() or "/" in host:  # no port; a URL (the dashboard's http://HOST:8265)
        raise ValueError(
            f"{flag}{address}: not the address of a Ray cluster: give HOST:PORT (what `ray start --head` prints "
            "on the head node: HOST:6379), ray://HOST:10001 (Ray Client), or auto (the cluster this machine joined)"
        )
    why = unreachable(host.strip("[]"), int(port), timeout_s)
    if why:
        raise ValueError(
            f"{flag}{address}: no Ray cluster answers there ({why}); start one with `ray start --head` on its "
            "head node, and give the address it prints (HOST:6379)"
        )
    if not os.environ.get("RAY_USE_TLS") and not speaks_grpc(host.strip("[]"), int(port), timeout_s):
        raise ValueError(
            f"{flag}{address}: something answers there, but no Ray cluster (it does not speak gRPC, as a cluster's "
            "GCS and Ray Client do: the dashboard's port, 8265? another server?); give the address `ray start --head` "
            "prints on the head node (HOST:6379), or ray://HOST:10001"
        )


# an HTTP/2 client's first bytes: its preface, then an empty SETTINGS frame (9 bytes: length 0, type 4, no flags)
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def speaks_grpc(host: str, port: int, timeout_s: float) -> bool:
    """Whether the server at host:port answers an HTTP/2 client's preface with its SETTINGS frame, as gRPC servers
    do (a Ray cluster's GCS, Ray Client's server); an HTTP/1 server answers otherwise, and a silent one not at all."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(_HTTP2_PREFACE)
            head = b""
            while len(head) < 9 and (chunk := sock.recv(9 - len(head))):
                head += chunk
    except OSError:  # (a timeout too)
        return False
    return len(head) == 9 and head[3] == 4


def join_cluster(address: str) -> None:
    """ray.init of the cluster at `address`; where it fails and this machine has Ray's token while RAY_AUTH_MODE is
    unset, the error says how to send it: `ray start --head` turns token authentication on where a token exists
    (this machine's local studies write one), and Ray's client, given an address, never does (InvalidAuthToken).
    Sending it to a cluster without authentication fails its trials, so it is not sent unasked."""
    import ray

    try:
        ray.init(address=address, logging_level=logging.WARNING)
    except ConnectionError as err:
        if address == "auto" and "Could not find any running Ray instance" in str(err):
            raise ConnectionError(
                "--address auto: no Ray cluster runs on this machine (`ray start --head` starts one; without --address "
                "the study starts a Ray of its own)"
            ) from None
        token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
        if "RAY_AUTH_MODE" in os.environ or not (token.is_file() or os.environ.get("RAY_AUTH_TOKEN")):
            raise
        raise ConnectionError(
            f"{err} (if it runs with token authentication, which `ray start --head` turns on where a token exists, "
            f"as {token} does here: set RAY_AUTH_MODE=token for this command)"
        ) from None


def check_mlflow(uri: str | None, timeout_s: float = 5.0) -> None:
    """--mlflow: that MLflow is installed, and that a tracking server named by an http(s) URI answers within
    `timeout_s` (unless reached through a proxy, HTTP(S)_PROXY, which only MLflow's own requests can try); a local
    file store is allowed (MLflow 3 keeps it in maintenance and refuses it unless told)."""
    if uri is None:
        return
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ValueError("--mlflow needs MLflow: pip install -e '.[mlflow]' (or mlflow-skinny)") from None
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    parts = urlsplit(uri)
    proxied = parts.scheme in getproxies() and not proxy_bypass(parts.hostname or "")  # MLflow's requests use it
    if parts.scheme in ("http", "https") and not proxied:
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:  # a port that is no number, or out of range
            port = None
        why: str | None = "no host in it" if not parts.hostname else "its port is not a number from 0 to 65535"
        if parts.hostname and port is not None:
            why = unreachable(parts.hostname, port, timeout_s)
        if why:
            raise ValueError(
                f"--mlflow {uri}: no MLflow server answers there ({why}); start one with "
                "`mlflow server --host 127.0.0.1 --port 5000` and give http://127.0.0.1:5000, or a folder as "
                "file:///PATH/mlruns"
            )


def unreachable(host: str, port: int, timeout_s: float) -> str | None:
    """Why nothing answers at host:port within `timeout_s` (its name lookup included), or None where something
    does."""
    try:
        _connect(host, port, timeout_s)
    except OSError as err:
        return {
            socket.gaierror: f"no host named {host!r}",
            ConnectionRefusedError: f"nothing listens on port {port} of {host}",
            TimeoutError: f"no answer from {host}:{port} in {timeout_s:.0f} s",
        }.get(type(err), err.strerror or str(err))
    return None


def _connect(host: str, port: int, timeout_s: float) -> None:
    """Connect to host:port within `timeout_s`, its name lookup included (a resolver that does not answer holds
    getaddrinfo far longer than a connection's timeout): in a daemon thread, left behind past the limit. Raises
    what failed: socket.gaierror for no such host (a name no resolver could take too), TimeoutError past the limit."""
    failed: list[OSError | None] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            failed.append(None)
        except OSError as err:
            failed.append(err)
        except UnicodeError as err:  # a label over 63 characters, ...
            failed.append(socket.gaierror(str(err)))

    thread = threading.Thread(target=attempt, daemon=True, name="address check")
    thread.start()
    thread.join(timeout_s)
    if not failed:
        raise TimeoutError
    if failed[0] is not None:
        raise failed[0]


# the longest socket path a local Ray makes under its temporary folder: RAY_TMPDIR/ray/session_.../sockets/...
_SOCKET = Path("ray", "session_2026-12-07_05-14-03_123456_4194304", "sockets", "plasma_store")


def check_ray_temp() -> None:
    """The folder a local Ray keeps its session in ($RAY_TMPDIR, else $TMPDIR, else /tmp: Ray's order), where the
    variable that named it is said: Ray's own errors named the path alone, or said "validate_socket_filename
    failed: AF_UNIX path length cannot exceed 107 bytes" (a socket path must fit in 108 bytes)."""
    name = next((n for n in ("RAY_TMPDIR", "TMPDIR") if os.environ.get(n)), None)
    if name is None:
        return
    folder = Path(os.environ[name])
    where = f"${name} {folder}"
    if not folder.is_dir():
        raise ValueError(f"{where}: {not_a('folder', folder)} (a local Ray keeps its session in it)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{where}: not writable (a local Ray keeps its session in it)")
    longest = len(os.fsencode(folder.absolute() / _SOCKET))
    if longest > 107:
        raise ValueError(
            f"{where}: too long a path for a local Ray's sockets ({longest} bytes under it, and a socket's path ends "
            f"at 107): point {name} at a shorter folder, e.g. /tmp/ray-{os.getuid()}"
        )
