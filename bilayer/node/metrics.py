"""Prometheus metrics of one node, in a registry of its own (several nodes may share a process in tests)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from .. import __version__
from .process import build_commit


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # resident memory, open descriptors, CPU seconds, start time
        PlatformCollector(registry=r)
        self.build_info = Gauge("bilayer_build_info", "The running build (always 1)", ["version", "commit"],
                                registry=r)
        self.build_info.labels(__version__, build_commit()).set(1)
        self.entries_accepted = Counter(
            "bilayer_entries_accepted", "Entries stored by this node", ["source"], registry=r
        )
        self.entries_rejected = Counter(
            "bilayer_entries_rejected", "Entries refused at ingress, by reason code", ["code"], registry=r
        )
        self.entries_refused = Counter(
            "bilayer_entries_refused", "Client entries refused before any work on them (whole requests, answered 429"
            " or 503 with Retry-After), by reason", ["reason"], registry=r
        )
        self.entries_unordered = Gauge(
            "bilayer_entries_unordered", "Entries held and not yet ordered by a checkpoint: the admission backlog",
            registry=r
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
        self.http_seconds = Histogram(
            "bilayer_http_request_duration_seconds",
            "Time to answer an HTTP request, by route (long-polls and streams included as they last)",
            ["route"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
        )
        # consensus (layer 2), as of the last checkpoint this node applied
        self.height = Gauge("bilayer_consensus_height", "Height of the last checkpoint applied", registry=r)
        self.round = Gauge("bilayer_consensus_round", "Round that decided the last checkpoint", registry=r)
        self.checkpoint_interval = Histogram(
            "bilayer_consensus_checkpoint_interval_seconds",
            "Time between consecutive checkpoints (their timestamps)",
            registry=r,
            buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0),
        )
        self.checkpoint_entries = Counter(
            "bilayer_consensus_entries_ordered", "Entries ordered by the checkpoints applied", registry=r
        )
        self.validators = Gauge("bilayer_consensus_validators", "Validators of the set voting next", registry=r)
        self.validators_power = Gauge(
            "bilayer_consensus_validators_power", "Total voting power of the set voting next", registry=r
        )
        self.validator_power = Gauge(
            "bilayer_consensus_validator_power", "Voting power of each validator of the set voting next",
            ["validator"], registry=r
        )
        self.missing_validators = Gauge(
            "bilayer_consensus_missing_validators",
            "Validators whose precommit is not in the last checkpoint's certificate",
            registry=r,
        )
        self.missing_validators_power = Gauge(
            "bilayer_consensus_missing_validators_power", "Voting power of the missing validators", registry=r
        )
        self.byzantine_validators = Gauge(
            "bilayer_consensus_byzantine_validators", "Validators with recorded equivocations", registry=r
        )
        self.catching_up = Gauge(
            "bilayer_catching_up", "1 while peers report checkpoints this node has not applied yet", registry=r
        )
        self.peer_evictions = Counter(
            "bilayer_peer_links_evicted", "Inbound peer links closed or refused to keep slots, by reason",
            ["reason"], registry=r
        )
        self.snapshot_chunks_served = Counter(
            "bilayer_snapshot_chunks_served", "Snapshot chunk requests of peers answered, by outcome (served or"
            " the refusal's code)", ["outcome"], registry=r
        )
        self.snapshot_height = Gauge(
            "bilayer_snapshot_height", "The height whose state this node restores (or restored) by snapshot",
            registry=r
        )
        self.snapshot_nodes = Gauge(
            "bilayer_snapshot_nodes", "State tree nodes received and verified in this node's snapshot join",
            registry=r
        )
        self.snapshot_sources_dropped = Counter(
            "bilayer_snapshot_sources_dropped", "Peers left out of a snapshot join, by code (a chunk that does not"
            " verify, or no answer)", ["code"], registry=r
        )
        self.snapshot_offers_refused = Counter(
            "bilayer_snapshot_offers_refused", "Snapshot offers of peers that did not prove themselves, by code",
            ["code"], registry=r
        )

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
