"""The etcd the other tests run against: free ports, restart, SIGKILL, a cluster."""
from __future__ import annotations

import os
import socket

from etcd_harness import EtcdCluster, EtcdServer, ephemeral_low, free_port


def test_single_member_survives_sigkill_and_restart_on_its_data() -> None:
    with EtcdServer() as etcd:
        assert etcd.client_port != etcd.peer_port
        rev = etcd.client.put("/h/a", "1")
        pid = etcd.proc.pid if etcd.proc else 0
        etcd.kill()
        assert not etcd.running
        with socket.socket() as s:  # the port is free again: nothing listens
            assert s.connect_ex(("127.0.0.1", etcd.client_port)) != 0
        etcd.start()
        assert etcd.proc is not None and etcd.proc.pid != pid
        assert etcd.client.get_prefix("/h/") == {"/h/a": "1"}
        assert etcd.client.revision() == rev
        workdir = etcd.workdir
    assert not os.path.exists(workdir)


def test_cluster_carries_on_without_its_leader() -> None:
    with EtcdCluster() as cluster:
        assert len(set(cluster.endpoints)) == 3
        leader = cluster.leader()
        leader.client.put("/h/k", "v")
        leader.kill()
        rest = [m for m in cluster.members if m.running]
        assert len(rest) == 2
        assert cluster.wait_leader() in rest
        rest[0].client.put("/h/k2", "v2")
        assert rest[1].client.get_prefix("/h/") == {"/h/k": "v", "/h/k2": "v2"}


def test_ports_below_the_ephemeral_range() -> None:
    """etcd binds its ports after they are chosen; one from the range the
    kernel hands to outgoing connections could be taken meanwhile."""
    low = ephemeral_low()
    ports = [free_port() for _ in range(1000)]
    assert len(set(ports)) == len(ports)
    if low > 12000:
        assert all(10000 <= p < low for p in ports), (low, ports)
