"""Address pools: automatic subnets step around what the host (Docker, podman, a VPN) already uses."""

from __future__ import annotations

import ipaddress
import json
import os
import pathlib
from collections.abc import Iterator

import pytest

from conftest import run_cli
from minictr.engine.network import pools
from minictr.errors import UsageError

PODMAN = ipaddress.ip_network("10.88.0.0/16")  # what podman's cni-podman0 holds on most machines with podman


def net(text: str) -> tuple[ipaddress.IPv4Network, str]:
    return ipaddress.ip_network(text), "test"


@pytest.fixture
def settings(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """A configuration file of the test's own (in place of /etc/minictr/minictr.conf), no pools in the environment."""
    path = tmp_path / "minictr.conf"
    monkeypatch.setenv("MINICTR_CONFIG", str(path))
    monkeypatch.delenv(pools.ENV, raising=False)
    return path


def test_the_default_pools_come_in_docker_order(settings: pathlib.Path) -> None:
    chosen, source = pools.address_pools()
    assert source == "built in"
    assert [f"{base}:{size}" for base, size in chosen] == [
        "10.88.0.0/16:24",
        *(f"172.{n}.0.0/16:24" for n in range(17, 32)),
        "192.168.0.0/16:24",
    ]
    assert str(pools.free_subnet([])) == "10.88.0.0/24"
    assert str(pools.free_subnet([net("10.88.0.0/24"), net("10.88.1.0/25")])) == "10.88.2.0/24"
    assert str(pools.free_subnet([net("10.88.0.0/16")])) == "172.17.0.0/24"  # podman's network is up
    assert str(pools.free_subnet([net("10.88.0.0/16"), net("172.17.0.0/16"), net("172.18.0.0/24")])) == "172.18.1.0/24"
    assert str(pools.free_subnet([net("10.0.0.0/8"), net("172.16.0.0/12")])) == "192.168.0.0/24"


def test_pools_run_out_with_a_message_that_says_what_to_do(settings: pathlib.Path) -> None:
    with pytest.raises(
        UsageError, match=r"no free subnet left in the address pools \(10.88.0.0/16 in /24s, .*--subnet"
    ):
        pools.free_subnet([net("0.0.0.0/1"), net("128.0.0.0/1")])


def test_the_config_file_sets_the_pools_and_the_environment_wins(
    settings: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.write_text('[network]\ndefault-address-pools = [\n  { base = "10.200.0.0/16", size = 26 },\n'
                        '  { base = "10.201.0.0/16" },\n]\n')  # fmt: skip
    chosen, source = pools.address_pools()
    assert source == f"{settings} [network] default-address-pools"
    assert [(str(base), size) for base, size in chosen] == [("10.200.0.0/16", 26), ("10.201.0.0/16", 24)]
    assert str(pools.free_subnet([net("10.200.0.0/17")])) == "10.200.128.0/26"
    monkeypatch.setenv(pools.ENV, "192.168.50.0/24:28, 10.9.0.0/16")
    chosen, source = pools.address_pools()
    assert source == f"${pools.ENV}" and [(str(b), s) for b, s in chosen] == [
        ("192.168.50.0/24", 28),
        ("10.9.0.0/16", 24),
    ]


@pytest.mark.parametrize(
    ("file", "env", "message"),
    [
        ("[network]\ndefault-address-pools = [", "", "minictr.conf: "),
        ("[network]\ndefault-address-pools = [{ size = 24 }]\n", "", "is not a { base"),
        ('[network]\ndefault-address-pools = [{ base = "10.1.2.0/16" }]\n', "", "has host bits set"),
        ("", "10.9.0.0/16:8", "size 8 must be between /16 and /30"),
        ("", ",", "no address pool given"),
    ],
)
def test_bad_pools_are_one_clear_error(
    settings: pathlib.Path, monkeypatch: pytest.MonkeyPatch, file: str, env: str, message: str
) -> None:
    settings.write_text(file)
    if env:
        monkeypatch.setenv(pools.ENV, env)
    with pytest.raises(UsageError, match=None) as caught:
        pools.address_pools()
    assert message in str(caught.value)


# --- on the host, beside a network that holds 10.88.0.0/16 ----------------------------------------


@pytest.fixture
def podman_like_network() -> Iterator[str]:
    """An interface holding 10.88.0.0/16, as podman's cni-podman0 does; removed afterwards.

    A dummy interface where the kernel has them, else a bridge (what
    cni-podman0 is; some kernels are built without the dummy driver).
    """
    from pyroute2 import IPRoute, NetlinkError

    name = f"mtpool{os.getpid() % 100000}"
    with IPRoute() as ipr:
        try:
            ipr.link("add", ifname=name, kind="dummy")
        except NetlinkError:
            ipr.link("add", ifname=name, kind="bridge")
        try:
            index = ipr.link_lookup(ifname=name)[0]
            ipr.addr("add", index=index, address="10.88.0.1", prefixlen=16)
            ipr.link("set", index=index, state="up")
            yield name
        finally:
            ipr.link("del", ifname=name)


@pytest.mark.root
def test_run_steps_around_a_network_that_holds_10_88(
    podman_like_network: str, data_root: str, state_root: str, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv("MINICTR_CONFIG", str(tmp_path / "none.conf"))  # the built-in pools, whatever /etc says
    monkeypatch.delenv(pools.ENV, raising=False)
    done = run_cli(
        "run", "busybox", "ip", "-4", "-o", "addr", "show", "eth0", data_root=data_root, state_root=state_root
    )
    assert done.returncode == 0, done.stderr
    address = ipaddress.ip_interface(done.stdout.split()[3])
    assert address.ip not in PODMAN
    assert any(address.ip in base for base, _ in pools.address_pools()[0])
    inspected = run_cli("network", "inspect", "bridge", data_root=data_root, state_root=state_root)
    subnet = ipaddress.ip_network(json.loads(inspected.stdout)[0]["Subnet"])
    assert address.ip in subnet and not subnet.overlaps(PODMAN)
    doctor = run_cli("doctor", data_root=data_root, state_root=state_root).stdout
    assert (
        f"10.88.0.0/16 ({podman_like_network})" in doctor and "address pools, built in: 10.88.0.0/16 in /24s" in doctor
    )
