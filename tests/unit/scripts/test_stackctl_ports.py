"""stack/stackctl's port choice: a stack's four services get four different free ports.

One bound and closed after the other, the kernel handed out the same port twice about once in 2,800
stacks (measured on this machine's kernel, 18 of 50,000); a CI run lost a test to a stack whose backend
and frontend were both given 38179. The check below draws enough stacks to see that happen.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
STACKCTL = ROOT / "stack" / "stackctl"


def load():
    loader = importlib.machinery.SourceFileLoader("stackctl", str(STACKCTL))
    spec = importlib.util.spec_from_loader("stackctl", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


stackctl = load()


def test_a_stacks_ports_are_always_different():
    # 20,000 stacks: the old choice (a port at a time) repeats one in about 7 of them.
    repeated = [ports for ports in (stackctl.free_ports(len(stackctl.DEFAULT_PORTS)) for dummy in range(20000))
                if len(set(ports)) != len(ports)]
    assert not repeated, repeated[:5]


def test_the_ports_are_free_and_released():
    ports = stackctl.free_ports(4)
    for port in ports:
        # Nothing holds them any more: each can be bound at once by whoever starts the service.
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
    assert stackctl.free_port() not in (0, None)


def test_init_writes_four_different_ports(tmp_path):
    assert stackctl.main(["init", "--dir", str(tmp_path / "s"), "--project", "tdtunitports"]) == 0
    env = dict(line.split("=", 1) for line in (tmp_path / "s" / ".env").read_text().splitlines()
               if "=" in line and not line.startswith("#"))
    ports = [env[key] for key in stackctl.DEFAULT_PORTS]
    assert len(set(ports)) == 4, ports


def test_random_ports_stay_below_the_ephemeral_range_and_off_the_drills():
    low = stackctl.ephemeral_port_range()[0]
    ports = [port for dummy in range(2000) for port in stackctl.free_ports(4)]
    assert all(stackctl.RANDOM_PORTS_FROM <= port < low for port in ports)
    assert not set(ports) & set(stackctl.DRILL_PORTS)


def test_a_machine_whose_ephemeral_range_starts_low_gets_the_kernels_ports(monkeypatch):
    monkeypatch.setattr(stackctl, "ephemeral_port_range", lambda: (1024, 65535 - 1))
    ports = stackctl.free_ports(4)
    assert len(set(ports)) == 4
