"""RabbitMQ nodes the chaos suite starts itself: own node names, ports, cookie and directories under a tmp dir.

The machine's shared node (rabbit@<host> on 5672) is never touched: these nodes have their own
Erlang cookie (in their own HOME), so no command here can even reach it. Each node is stopped by
the PID of its Erlang VM.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

SBIN = Path("/usr/lib/rabbitmq/bin")  # Debian's scripts that run as the calling user (those on PATH switch to `rabbitmq`)
SERVER = str(SBIN / "rabbitmq-server") if (SBIN / "rabbitmq-server").exists() else shutil.which("rabbitmq-server")
CTL = str(SBIN / "rabbitmqctl") if (SBIN / "rabbitmqctl").exists() else shutil.which("rabbitmqctl")
MISSING = "needs rabbitmq-server and rabbitmqctl on this machine to start a RabbitMQ node of its own"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Node:
    def __init__(self, base: Path, name: str, *, advanced: str = "[].") -> None:
        self.name = name
        self.nodename = f"{name}@localhost"
        self.dir = base / name
        self.home = base / "home"  # the cluster's cookie
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.handle: subprocess.Popen[bytes] | None = None
        self.dir.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(f"CHAOS{os.getpid()}{int(time.time())}")
            cookie.chmod(0o400)
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n")
        (self.dir / "advanced.config").write_text(advanced + "\n")

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.home),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def start(self, wait: bool = True) -> None:
        (self.dir / "pid").unlink(missing_ok=True)
        log = (self.dir / "server.log").open("ab")
        self.handle = subprocess.Popen([SERVER], env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_up()

    def wait_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.ctl("ping", check=False, timeout=30).returncode != 0:
            if self.handle is not None and self.handle.poll() is not None:
                raise RuntimeError(f"{self.nodename} exited:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.nodename} did not start in {timeout}s:\n{self.log()[-3000:]}")
            time.sleep(0.5)
        self.ctl("await_startup", timeout=timeout)

    def log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def ctl(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [CTL, "-q", "-n", self.nodename, *args],
            env={**os.environ, "HOME": str(self.home)},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.nodename}: {done.stderr or done.stdout}")
        return done

    @property
    def vm_pid(self) -> int | None:
        try:
            return int((self.dir / "pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def signal(self, sig: int) -> None:
        pid = self.vm_pid
        if pid is not None:
            os.kill(pid, sig)

    def kill(self) -> None:
        """SIGKILL the Erlang VM: no clean shutdown, as a crash or a power cut."""
        pid = self.vm_pid
        if pid is not None:
            try:
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.handle is not None:
            try:
                self.handle.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.handle.kill()
                self.handle.wait()
        self.handle = None

    def add_vhost(self, vhost: str) -> str:
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return self.url(vhost)

    def url(self, vhost: str = "/") -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/{quote(vhost, safe='')}"


def available() -> bool:
    return bool(SERVER and CTL)
