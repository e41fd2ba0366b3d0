"""The three rtnetlink requests every bridged container makes, without pyroute2.

pyroute2 (used for everything else: bridges, the host's routes, describing a
namespace) costs 150 ms of CPU to import here — more than all the rest of a
``minictr run`` — and a container on a bridge that is already up needs only
three requests, in the message layout of ``rtnetlink(7)``::

    RTM_NEWLINK   host: veth ``mv-<id>`` up on the bridge, its peer ``eth0``
                  created directly in the namespace of the container's pid
    RTM_GETLINK   container: the index of ``eth0``
    RTM_NEWADDR   container: eth0's address (IFA_LOCAL = IFA_ADDRESS, as ``ip addr add``)
    RTM_NEWLINK   container: eth0 up
    RTM_NEWROUTE  container: default via the gateway (table main, proto static)

Each request asks for an acknowledgement; a kernel refusal becomes a
:class:`HostError` naming the request and the errno.
"""

from __future__ import annotations

import os
import socket
import struct

from minictr.errors import HostError

RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 18, 20, 24
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_PID = 3, 4, 10, 18, 19
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_GATEWAY = 5
IFF_UP = 0x1
RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 4, 0, 1
NLA_F_NESTED = 0x8000

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change


def attr(kind: int, payload: bytes) -> bytes:
    """One rtattr (length, type, payload), padded to 4 bytes."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def name(text: str) -> bytes:
    """A NUL-terminated interface name."""
    return text.encode() + b"\0"


def u32(value: int) -> bytes:
    """A native 32-bit unsigned integer."""
    return struct.pack("=I", value)


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    """An ifinfomsg (family unspecified)."""
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)


def request(sock: socket.socket, kind: int, body: bytes, what: str, flags: int = 0) -> bytes:
    """Send one request and read until its acknowledgement; return the last reply that was not the ack."""
    sock.send(_HEADER.pack(_HEADER.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, 1, 0) + body)
    answer = b""
    while True:
        data, offset = sock.recv(65536), 0
        while offset + _HEADER.size <= len(data):
            length, reply, _, _, _ = _HEADER.unpack_from(data, offset)
            if reply == NLMSG_ERROR:
                (error,) = struct.unpack_from("=i", data, offset + _HEADER.size)
                if error:
                    raise HostError(f"{what}: {os.strerror(-error)}")
                return answer
            answer = data[offset + _HEADER.size : offset + length]
            offset += max(length + (-length % 4), _HEADER.size)


def add_veth(sock: socket.socket, host_name: str, bridge_index: int, pid: int, mtu: int) -> None:
    """``host_name`` up on the bridge; its peer ``eth0`` (down) in the network namespace of ``pid``."""
    peer = ifinfo() + attr(IFLA_IFNAME, name("eth0")) + attr(IFLA_NET_NS_PID, u32(pid)) + attr(IFLA_MTU, u32(mtu))
    data = attr(VETH_INFO_PEER | NLA_F_NESTED, peer)
    info = attr(IFLA_INFO_KIND, name("veth")) + attr(IFLA_INFO_DATA | NLA_F_NESTED, data)
    body = (ifinfo(flags=IFF_UP, change=IFF_UP) + attr(IFLA_IFNAME, name(host_name)) + attr(IFLA_MTU, u32(mtu))
            + attr(IFLA_MASTER, u32(bridge_index)) + attr(IFLA_LINKINFO | NLA_F_NESTED, info))  # fmt: skip
    request(sock, RTM_NEWLINK, body, f"creating veth {host_name}", NLM_F_CREATE | NLM_F_EXCL)


def link_index(sock: socket.socket, ifname: str) -> int:
    """The index of interface ``ifname`` in the socket's namespace."""
    reply = request(sock, RTM_GETLINK, ifinfo() + attr(IFLA_IFNAME, name(ifname)), f"looking up {ifname}")
    return int(_IFINFO.unpack_from(reply)[2])


def configure(sock: socket.socket, ifname: str, address: str, prefixlen: int, gateway: str) -> None:
    """Address ``ifname``, bring it up, and route everything via ``gateway``."""
    index = link_index(sock, ifname)
    packed = socket.inet_aton(address)
    body = struct.pack("=BBBBI", socket.AF_INET, prefixlen, 0, 0, index)  # ifaddrmsg: family, prefix, flags, scope
    body += attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
    request(sock, RTM_NEWADDR, body, f"adding {address}/{prefixlen} to {ifname}", NLM_F_CREATE | NLM_F_EXCL)
    request(sock, RTM_NEWLINK, ifinfo(index, IFF_UP, IFF_UP), f"bringing {ifname} up")
    # rtmsg: family, dst_len 0 (the default route), src_len, tos, table, protocol, scope, type, flags
    route = struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE,
                        RTN_UNICAST, 0)  # fmt: skip
    request(sock, RTM_NEWROUTE, route + attr(RTA_GATEWAY, socket.inet_aton(gateway)), f"routing via {gateway}",
            NLM_F_CREATE | NLM_F_EXCL)  # fmt: skip


def route_socket(fileno: int | None = None) -> socket.socket:
    """A NETLINK_ROUTE socket: a new one in this namespace, or the one of descriptor ``fileno`` (then owned)."""
    if fileno is not None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE, fileno=fileno)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
    sock.bind((0, 0))
    return sock
