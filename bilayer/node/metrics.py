"""Prometheus metrics of one node, in a registry of its own (several nodes may share a process in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.entries_accepted = Counter(
            "bilayer_entries_accepted", "Entries stored by this node", ["source"], registry=r
        )
        self.entries_rejected = Counter(
            "bilayer_entries_rejected", "Entries refused at ingress, by reason code", ["code"], registry=r
        )
        self.entries_stored = Gauge("bilayer_entries_stored", "Entries in this node's DAG", registry=r)
        self.tips = Gauge("bilayer_dag_tips", "Entries with no children yet", registry=r)
        self.orphans = Gauge("bilayer_orphans", "Entries held while their parents are fetched", registry=r)
        self.peers = Gauge("bilayer_peers_connected", "Authenticated peer links", registry=r)
        self.forks = Counter("bilayer_forks_detected", "Author forks recorded as evidence", registry=r)
        self.peer_frames = Counter(
            "bilayer_peer_messages_received", "Peer messages received, by type", ["type"], registry=r
        )
        self.peer_errors = Counter(
            "bilayer_peer_link_errors", "Peer links closed for protocol errors", ["code"], registry=r
        )
        self.commit_seconds = Histogram(
            "bilayer_storage_commit_seconds",
            "Time to commit one batch durably",
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )
        self.http_requests = Counter(
            "bilayer_http_requests", "HTTP requests answered, by route and status", ["route", "status"], registry=r
        )

        self.http_connections = Gauge("bilayer_http_connections", "Open HTTP connections", registry=r)
        self.http_dropped = Counter(
            "bilayer_http_connections_dropped",
            "HTTP connections closed or refused by the guard, by reason",
            ["reason"],
            registry=r,
        )
        self.accept_errors = Counter(
            "bilayer_accept_errors", "Failed accept() calls (out of descriptors or memory)", registry=r
        )
        self.peer_evictions = Counter(
            "bilayer_peer_links_evicted", "Inbound peer links closed or refused to keep slots, by reason",
            ["reason"], registry=r
        )

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
