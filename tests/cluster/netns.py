"""A throwaway multi-host network on one Linux machine: a bridge and one network namespace per node.

    host (bridge prb<tag>, 10.231.X.1/24) ── veth ── namespace posray-<tag>-head    10.231.X.10
                                          ── veth ── namespace posray-<tag>-worker1 10.231.X.11
                                          ── veth ── ...

Every name carries a per-run random tag and the /24 is picked (under a machine-wide lock) among
10.231.1-254 so that it is not on any interface yet: parallel runs never collide. The host end of
each veth sits on the bridge, so the host (Redis, PostgreSQL, the load generator) reaches every
node and the nodes reach each other; cutting a node's link is `ip link set <host end> down`
(packets are dropped, no RST: a real partition). A state file per run under /run/posray-netns
names the owner process; `create()` first removes what runs whose owner died left behind
(processes in their namespaces, the namespaces, the bridge, and folders named in cleanup_paths).

Needs root and iproute2 (`ip netns`); `unavailable_reason()` says why not, for pytest.skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SUBNET_PREFIX = "10.231"
HOST_OCTET = 1
FIRST_NODE_OCTET = 10
STATE_DIR = Path("/run/posray-netns")
_IP_TIMEOUT_S = 20


class NetnsError(RuntimeError):
    """An `ip` command failed."""


def ip(*args: str, check: bool = True, timeout: float = _IP_TIMEOUT_S) -> str:
    """Run `ip ARGS`; return stdout (raise NetnsError with stderr when it fails and check)."""
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {out.stderr.strip() or out.returncode}")
    return out.stdout


def unavailable_reason() -> str | None:
    """None when this process can build namespaces; otherwise why not (a pytest skip reason)."""
    if os.geteuid() != 0:
        return "multi-node test needs root (ip netns, veth, bridge)"
    if shutil.which("ip") is None:
        return "multi-node test needs iproute2 (`ip`)"
    probe = f"posray-probe-{secrets.token_hex(3)}"
    try:
        ip("netns", "add", probe)
    except (NetnsError, OSError, subprocess.TimeoutExpired) as e:
        return f"`ip netns add` does not work here: {e}"
    try:
        ip("link", "add", f"prq{probe[-6:]}", "type", "bridge")
        ip("link", "del", f"prq{probe[-6:]}")
    except NetnsError as e:
        return f"cannot create a Linux bridge here: {e}"
    finally:
        ip("netns", "del", probe, check=False)
    return None


def _pid_start(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat): tells a pid from its reuse."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@dataclass
class Node:
    name: str  # short, e.g. "head", "worker1"
    netns: str
    address: str
    veth_host: str
    veth_node: str


@dataclass
class Netns:
    """A bridge plus one namespace per node name; use as a context manager (tears down on exit)."""

    node_names: list[str]
    cleanup_paths: list[str] = field(default_factory=list)  # removed on teardown (and by the sweep)
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    nodes: dict[str, Node] = field(default_factory=dict)
    subnet: ipaddress.IPv4Network | None = None
    bridge: str = ""
    _created: bool = False

    # -- building and tearing down ----------------------------------------------------------

    def __enter__(self) -> "Netns":
        self.create()
        return self

    def __exit__(self, *exc) -> None:
        self.teardown()

    @property
    def host_address(self) -> str:
        return str(self.subnet.network_address + HOST_OCTET)

    def address(self, node: str) -> str:
        return self.nodes[node].address

    def create(self) -> "Netns":
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        self.bridge = f"prb{self.tag}"
        try:
            with _machine_lock():
                sweep_stale()
                self.subnet = _free_subnet()
                self._write_state()  # before anything exists, so a crash mid-way is swept too
                self._build()
        except BaseException:
            self.teardown()
            raise
        self._created = True
        return self

    def _build(self) -> None:
        prefix = self.subnet.prefixlen
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.host_address}/{prefix}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for i, name in enumerate(self.node_names):
            node = Node(name, f"posray-{self.tag}-{name}",
                        str(self.subnet.network_address + FIRST_NODE_OCTET + i),
                        f"prv{self.tag}{i}", f"prn{self.tag}{i}")
            self.nodes[name] = node
            self._write_state()
            ip("netns", "add", node.netns)
            ip("link", "add", node.veth_host, "type", "veth", "peer", "name", node.veth_node)
            ip("link", "set", node.veth_node, "netns", node.netns)
            ip("link", "set", node.veth_host, "master", self.bridge)
            ip("link", "set", node.veth_host, "up")
            ip("-n", node.netns, "link", "set", "lo", "up")
            ip("-n", node.netns, "link", "set", node.veth_node, "name", "eth0")
            ip("-n", node.netns, "addr", "add", f"{node.address}/{prefix}", "dev", "eth0")
            ip("-n", node.netns, "link", "set", "eth0", "up")
        self._wait_reachable()

    def _wait_reachable(self, timeout_s: float = 10) -> None:
        """Every node answers a ping from the host (the bridge may need a moment to forward)."""
        if shutil.which("ping") is None:
            return
        deadline = time.monotonic() + timeout_s
        for node in self.nodes.values():
            while subprocess.run(["ping", "-c", "1", "-W", "1", node.address],
                                 capture_output=True).returncode != 0:
                if time.monotonic() > deadline:
                    raise NetnsError(f"{node.address} ({node.netns}) does not answer ping")
                time.sleep(0.1)

    def teardown(self) -> None:
        """Kill every process in our namespaces, delete them, the veths and the bridge."""
        _teardown(self.bridge, [n.netns for n in self.nodes.values()],
                  [n.veth_host for n in self.nodes.values()], self.cleanup_paths)
        self._state_file().unlink(missing_ok=True)
        self._created = False

    def _state_file(self) -> Path:
        return STATE_DIR / f"{self.tag}.json"

    def _write_state(self) -> None:
        pid = os.getpid()
        tmp = self._state_file().with_suffix(".tmp")
        tmp.write_text(json.dumps({
            "owner_pid": pid, "owner_start": _pid_start(pid), "bridge": self.bridge,
            "subnet": str(self.subnet) if self.subnet else None,
            "netns": [n.netns for n in self.nodes.values()],
            "veths": [n.veth_host for n in self.nodes.values()],
            "paths": list(self.cleanup_paths)}))
        tmp.replace(self._state_file())

    # -- using it ----------------------------------------------------------------------------

    def argv(self, node: str, argv: list[str]) -> list[str]:
        """`argv` wrapped to run inside the node's namespace."""
        return ["ip", "netns", "exec", self.nodes[node].netns, *argv]

    def popen(self, node: str, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.argv(node, argv), **kwargs)

    def run(self, node: str, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(node, argv), **kwargs)

    def cut(self, node: str) -> None:
        """Partition the node: its link to the bridge goes down (packets dropped, no resets)."""
        ip("link", "set", self.nodes[node].veth_host, "down")

    def restore(self, node: str) -> None:
        ip("link", "set", self.nodes[node].veth_host, "up")

    def pids(self, node: str) -> list[int]:
        return _netns_pids(self.nodes[node].netns)

    def node_of_pid(self, pid: int) -> str | None:
        """The node whose namespace holds process `pid` (None: the host's, or no such process)."""
        name = ip("netns", "identify", str(pid), check=False).strip()
        for node in self.nodes.values():
            if node.netns == name:
                return node.name
        return None

    def kill_all(self, node: str, timeout_s: float = 10) -> int:
        """kill -9 every process in the node's namespace (a machine losing power); return how many."""
        return _kill_netns(self.nodes[node].netns, timeout_s)


# -- shared machinery (also used to sweep what a dead run left) ----------------------------------


@contextlib.contextmanager
def _machine_lock():
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _free_subnet() -> ipaddress.IPv4Network:
    """A 10.231.X.0/24 that no interface or route uses (call with the machine lock held)."""
    used = ip("-4", "-o", "addr", "show") + ip("-4", "route", "show", "table", "all", check=False)
    thirds = list(range(1, 255))
    secrets.SystemRandom().shuffle(thirds)
    for third in thirds:
        if f"{SUBNET_PREFIX}.{third}." not in used:
            return ipaddress.IPv4Network(f"{SUBNET_PREFIX}.{third}.0/24")
    raise NetnsError(f"no free {SUBNET_PREFIX}.X.0/24")


def _netns_pids(netns: str) -> list[int]:
    out = ip("netns", "pids", netns, check=False)
    return [int(p) for p in out.split() if p.isdigit()]


def _kill_netns(netns: str, timeout_s: float) -> int:
    killed: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while True:
        pids = [p for p in _netns_pids(netns) if p != os.getpid()]
        if not pids:
            return len(killed)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        if time.monotonic() > deadline:
            raise NetnsError(f"processes of {netns} survive SIGKILL: {pids}")
        time.sleep(0.05)


def _teardown(bridge: str, netns_names: list[str], veths: list[str], paths: list[str] = ()) -> None:
    existing = set(ip("netns", "list", check=False).split())
    for netns in netns_names:
        if netns in existing:
            with contextlib.suppress(NetnsError):
                _kill_netns(netns, 10)
            ip("netns", "del", netns, check=False)
    for veth in veths:  # deleting the namespace deletes its veth pair; this is for half-built ones
        ip("link", "del", veth, check=False)
    if bridge:
        ip("link", "del", bridge, check=False)
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def sweep_stale() -> list[str]:
    """Tear down what runs whose owner process is gone left behind; return their tags."""
    swept = []
    for path in STATE_DIR.glob("*.json"):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        pid = state.get("owner_pid")
        if pid and _pid_start(pid) == state.get("owner_start") and _pid_start(pid) is not None:
            continue  # its owner is alive
        _teardown(state.get("bridge", ""), state.get("netns", []), state.get("veths", []),
                  state.get("paths", []))
        path.unlink(missing_ok=True)
        swept.append(path.stem)
    return swept
