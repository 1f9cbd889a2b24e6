"""The real RabbitMQ for tests: one vhost per test run, created and deleted here."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import uuid
from urllib.parse import quote, urlsplit

import httpx

HOST = os.environ.get("TEST_RABBITMQ_HOST", "127.0.0.1")
PORT = int(os.environ.get("TEST_RABBITMQ_PORT", "5672"))
MANAGEMENT = os.environ.get("TEST_RABBITMQ_MANAGEMENT", f"http://{HOST}:15672")
USER = os.environ.get("TEST_RABBITMQ_USER", "guest")
PASSWORD = os.environ.get("TEST_RABBITMQ_PASSWORD", "guest")

HOW_TO_START = f"""RabbitMQ is not reachable at {HOST}:{PORT}. The tests use the real broker and never skip.
Start it and enable its management API, then run the tests again:
    sudo rabbitmq-server -detached && sudo rabbitmq-plugins enable rabbitmq_management
or: docker compose up -d rabbitmq"""


def reachable() -> bool:
    try:
        with socket.create_connection((HOST, PORT), timeout=3):
            return True
    except OSError:
        return False


def _api(method: str, path: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, f"{MANAGEMENT}/api/{path}", auth=(USER, PASSWORD), timeout=10, **kwargs)


def create_vhost() -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    try:
        _api("PUT", f"vhosts/{quote(name, safe='')}").raise_for_status()
        _api(
            "PUT",
            f"permissions/{quote(name, safe='')}/{USER}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
        ).raise_for_status()
    except httpx.HTTPError:
        ctl = shutil.which("rabbitmqctl")
        if ctl is None:
            raise
        subprocess.run([ctl, "add_vhost", name], check=True, capture_output=True)
        subprocess.run([ctl, "set_permissions", "-p", name, USER, ".*", ".*", ".*"], check=True, capture_output=True)
    return name


def delete_vhost(name: str) -> None:
    try:
        _api("DELETE", f"vhosts/{quote(name, safe='')}").raise_for_status()
    except httpx.HTTPError:
        ctl = shutil.which("rabbitmqctl")
        if ctl is not None:
            subprocess.run([ctl, "delete_vhost", name], check=False, capture_output=True)


def url(vhost: str) -> str:
    return f"amqp://{USER}:{PASSWORD}@{HOST}:{PORT}/{quote(vhost, safe='')}"


def vhost_of(broker_url: str) -> str:
    from urllib.parse import unquote

    return unquote(urlsplit(broker_url).path.lstrip("/")) or "/"


def close_connections(vhost: str, name_prefix: str = "") -> int:
    """Force-close client connections to `vhost` (a broker outage, as those clients see it)."""
    response = _api("GET", f"vhosts/{quote(vhost, safe='')}/connections")
    response.raise_for_status()
    closed = 0
    for connection in response.json():
        if not connection.get("client_properties", {}).get("connection_name", "").startswith(name_prefix):
            continue
        _api("DELETE", f"connections/{quote(connection['name'], safe='')}", headers={"X-Reason": "test outage"})
        closed += 1
    return closed


def set_policy(vhost: str, name: str, pattern: str, definition: dict[str, object], apply_to: str = "queues") -> None:
    """Apply a policy to the queues of `vhost` matching `pattern` (a length limit, say), as an operator would."""
    body = {"pattern": pattern, "definition": definition, "apply-to": apply_to, "priority": 10}
    try:
        _api("PUT", f"policies/{quote(vhost, safe='')}/{quote(name, safe='')}", json=body).raise_for_status()
    except httpx.HTTPError:
        _ctl("set_policy", "-p", vhost, "--apply-to", apply_to, "--priority", "10", name, pattern, json.dumps(definition))


def clear_policy(vhost: str, name: str) -> None:
    try:
        _api("DELETE", f"policies/{quote(vhost, safe='')}/{quote(name, safe='')}").raise_for_status()
    except httpx.HTTPError:
        _ctl("clear_policy", "-p", vhost, name)


def _ctl(*args: str) -> str:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise RuntimeError("neither the management API nor rabbitmqctl is available to manage the test broker")
    return subprocess.run([ctl, "-q", *args], check=True, capture_output=True, text=True).stdout
