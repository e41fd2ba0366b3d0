"""Bridge networks: veth pairs, IP address management, NAT, published ports and names.

One module per idea, importable on its own from a notebook:

- :mod:`.store`     networks and leases on disk, the host-wide lock, subnets and addresses (IPAM)
- :mod:`.pools`     the address pools automatic subnets come from (as Docker's default-address-pools)
- :mod:`.links`     bridges, veth pairs, addresses and routes through netlink (pyroute2)
- :mod:`.agent`     each bridge's netlink agent: a container's veth and eth0, without pyroute2 in ``minictr run``
- :mod:`.firewall`  the nftables table ``ip minictr``: masquerading, published ports, isolation
- :mod:`.ports`     ``-p`` and ``-P``
- :mod:`.names`     /etc/hosts, /etc/hostname, /etc/resolv.conf
- :mod:`.dns`       the embedded DNS server of a user network (names, aliases, services; forwarding)
- :mod:`.resolver`  that server's life beside its network, and the resolv.conf that names it
- :mod:`.daemons`   how a network's helper processes (DNS server, agent) start, say ready and stop
- :mod:`.attach`    a container joins and leaves its network (``minictr run --network``)
- :mod:`.manage`    ``minictr network create | ls | inspect | rm | prune``

Nothing here is imported by containers with ``--network none`` or ``host``
beyond :mod:`.attach` and :mod:`.names`; pyroute2 only when a bridge comes up
(or its agent is missing) and by the agents.
"""

#: The network a container joins when ``--network`` is not given (as Docker's ``bridge``).
DEFAULT_NETWORK = "bridge"

#: Host-wide lock and records of the network layer (root only: bridges need CAP_NET_ADMIN).
HOST_DIR = "/run/minictr-network"
