"""The real RabbitMQ for tests: one vhost per test run, created and deleted here.

Administration (vhosts, listing and closing client connections) goes through the management
HTTP API when it is up, and through `rabbitmqctl` on the same machine when it is not (a fresh
RabbitMQ has no management plugin). `admin()` picks one at the start of the run; when neither
works, the run stops at once with `HOW_TO_ADMINISTER`.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import socket
import subprocess
import uuid
from typing import Protocol
from urllib.parse import quote, unquote, urlsplit

import httpx

HOST = os.environ.get("TEST_RABBITMQ_HOST", "127.0.0.1")
PORT = int(os.environ.get("TEST_RABBITMQ_PORT", "5672"))
MANAGEMENT = os.environ.get("TEST_RABBITMQ_MANAGEMENT", f"http://{HOST}:15672")
USER = os.environ.get("TEST_RABBITMQ_USER", "guest")
PASSWORD = os.environ.get("TEST_RABBITMQ_PASSWORD", "guest")

HOW_TO_START = f"""RabbitMQ is not reachable at {HOST}:{PORT}. The tests use the real broker and never skip.
Start it, then run the tests again:
    sudo rabbitmq-server -detached      (or: brew services start rabbitmq, or: docker compose up -d rabbitmq)"""

HOW_TO_ADMINISTER = f"""RabbitMQ answers at {HOST}:{PORT}, but the tests cannot administer it (create a vhost for
the run, close client connections): its management API at {MANAGEMENT} is not up, and
`rabbitmqctl` is {{ctl}}.
Either enable the management API:
    sudo rabbitmq-plugins enable rabbitmq_management    (docker compose's rabbitmq has it)
or run the tests as a user that may run rabbitmqctl against this broker (root or the rabbitmq user).
Elsewhere than {HOST}:15672: TEST_RABBITMQ_MANAGEMENT=http://host:port"""


class BrokerAdminUnavailable(RuntimeError):
    pass


class Admin(Protocol):
    name: str

    def works(self) -> bool: ...
    def vhosts(self) -> list[str]: ...
    def add_vhost(self, vhost: str) -> None: ...
    def delete_vhost(self, vhost: str) -> None: ...
    def connections(self, vhost: str) -> list[tuple[str, str]]:
        """(broker's id for the connection, client's connection_name) of each client connection."""
        ...

    def close_connection(self, name: str, reason: str) -> None: ...
    def set_policy(self, vhost: str, name: str, pattern: str, definition: dict[str, object]) -> None: ...
    def clear_policy(self, vhost: str, name: str) -> None: ...


class ManagementApi:
    name = "management API"

    def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        response = httpx.request(method, f"{MANAGEMENT}/api/{path}", auth=(USER, PASSWORD), timeout=10, **kwargs)
        response.raise_for_status()
        return response

    def works(self) -> bool:
        try:
            self._request("GET", "overview")
        except httpx.HTTPError:
            return False
        return True

    def vhosts(self) -> list[str]:
        return [v["name"] for v in self._request("GET", "vhosts").json()]

    def add_vhost(self, vhost: str) -> None:
        self._request("PUT", f"vhosts/{quote(vhost, safe='')}")
        self._request("PUT", f"permissions/{quote(vhost, safe='')}/{USER}", json={"configure": ".*", "write": ".*", "read": ".*"})

    def delete_vhost(self, vhost: str) -> None:
        self._request("DELETE", f"vhosts/{quote(vhost, safe='')}")

    def connections(self, vhost: str) -> list[tuple[str, str]]:
        # A new connection is listed after the statistics interval (5 s by default): callers poll.
        listed = self._request("GET", f"vhosts/{quote(vhost, safe='')}/connections").json()
        return [(c["name"], c.get("client_properties", {}).get("connection_name", "")) for c in listed]

    def close_connection(self, name: str, reason: str) -> None:
        self._request("DELETE", f"connections/{quote(name, safe='')}", headers={"X-Reason": reason})

    def set_policy(self, vhost: str, name: str, pattern: str, definition: dict[str, object]) -> None:
        body = {"pattern": pattern, "definition": definition, "apply-to": "queues", "priority": 10}
        self._request("PUT", f"policies/{quote(vhost, safe='')}/{quote(name, safe='')}", json=body)

    def clear_policy(self, vhost: str, name: str) -> None:
        self._request("DELETE", f"policies/{quote(vhost, safe='')}/{quote(name, safe='')}")


class Rabbitmqctl:
    name = "rabbitmqctl"

    def __init__(self) -> None:
        self.path = shutil.which("rabbitmqctl")

    def _run(self, *args: str) -> str:
        if self.path is None:
            raise BrokerAdminUnavailable("rabbitmqctl is not on PATH")
        done = subprocess.run([self.path, "-q", *args], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise BrokerAdminUnavailable(f"rabbitmqctl {' '.join(args)} failed: {(done.stderr or done.stdout).strip()}")
        return done.stdout

    def works(self) -> bool:
        try:
            self._run("list_vhosts")
        except (BrokerAdminUnavailable, OSError, subprocess.TimeoutExpired):
            return False
        return True

    def vhosts(self) -> list[str]:
        return self._run("list_vhosts", "--no-table-headers", "name").split()

    def add_vhost(self, vhost: str) -> None:
        self._run("add_vhost", vhost)
        self._run("set_permissions", "-p", vhost, USER, ".*", ".*", ".*")

    def delete_vhost(self, vhost: str) -> None:
        self._run("delete_vhost", vhost)

    def connections(self, vhost: str) -> list[tuple[str, str]]:
        # close_connection takes a connection's process id, which only the table format prints
        # usably; the JSON format gives the client properties (as [key, type, value] triples).
        # The broker's name for a connection joins the two.
        table = self._run("list_connections", "-p", vhost, "--no-table-headers", "name", "pid")
        pids = dict(line.rsplit("\t", 1) for line in table.splitlines() if "\t" in line)
        listed = json.loads(
            self._run("list_connections", "-p", vhost, "--formatter", "json", "name", "client_properties") or "[]"
        )
        return [
            (pids[c["name"]], next((value for key, _, value in c["client_properties"] if key == "connection_name"), ""))
            for c in listed
            if c["name"] in pids
        ]

    def close_connection(self, name: str, reason: str) -> None:
        self._run("close_connection", name, reason)

    def set_policy(self, vhost: str, name: str, pattern: str, definition: dict[str, object]) -> None:
        self._run("set_policy", "-p", vhost, "--apply-to", "queues", "--priority", "10", name, pattern, json.dumps(definition))

    def clear_policy(self, vhost: str, name: str) -> None:
        self._run("clear_policy", "-p", vhost, name)


@functools.cache
def admin() -> Admin:
    """The first way of administering the broker that works; raises with how to fix it if none does."""
    candidates: list[Admin] = [ManagementApi(), Rabbitmqctl()]
    for candidate in candidates:
        if candidate.works():
            return candidate
    ctl = Rabbitmqctl()
    state = "not on PATH" if ctl.path is None else f"at {ctl.path} but cannot reach the broker (not allowed to?)"
    raise BrokerAdminUnavailable(HOW_TO_ADMINISTER.format(ctl=state))


def working_admins() -> list[Admin]:
    return [candidate for candidate in (ManagementApi(), Rabbitmqctl()) if candidate.works()]


def reachable() -> bool:
    try:
        with socket.create_connection((HOST, PORT), timeout=3):
            return True
    except OSError:
        return False


# A run's vhost names the process that made it, so that the vhosts of runs killed before they
# could clean up (each holds queues, and file handles of the broker) are removed by the next run.
RUN_VHOST = re.compile(r"^test-p(\d+)-[0-9a-f]+$")


def create_vhost() -> str:
    remove_abandoned_vhosts()
    name = f"test-p{os.getpid()}-{uuid.uuid4().hex[:8]}"
    admin().add_vhost(name)
    return name


def remove_abandoned_vhosts() -> list[str]:
    """Delete the vhosts of test runs on this machine whose process is gone; returns their names."""
    if HOST not in ("127.0.0.1", "localhost", "::1"):
        return []  # process ids mean something only on the broker's own machine
    removed = []
    for vhost in admin().vhosts():
        match = RUN_VHOST.match(vhost)
        if match and not _alive(int(match.group(1))):
            try:
                admin().delete_vhost(vhost)
            except Exception:
                continue  # another run removed it first
            removed.append(vhost)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def delete_vhost(name: str) -> None:
    admin().delete_vhost(name)


def url(vhost: str) -> str:
    return f"amqp://{USER}:{PASSWORD}@{HOST}:{PORT}/{quote(vhost, safe='')}"


def vhost_of(broker_url: str) -> str:
    return unquote(urlsplit(broker_url).path.lstrip("/")) or "/"


def close_connections(vhost: str, name_prefix: str = "", using: Admin | None = None) -> int:
    """Force-close client connections to `vhost` whose connection_name starts with `name_prefix`
    (a broker outage, as those clients see it); returns how many were closed."""
    using = using or admin()
    closed = 0
    for name, connection_name in using.connections(vhost):
        if connection_name.startswith(name_prefix):
            using.close_connection(name, "test outage")
            closed += 1
    return closed


def set_policy(vhost: str, name: str, pattern: str, definition: dict[str, object]) -> None:
    """Apply a policy to the queues of `vhost` matching `pattern` (a length limit, say), as an operator would."""
    admin().set_policy(vhost, name, pattern, definition)


def clear_policy(vhost: str, name: str) -> None:
    admin().clear_policy(vhost, name)
