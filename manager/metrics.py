"""Prometheus metrics of the manager, served on ``--metrics-addr`` at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

IS_LEADER = Gauge("kruise_manager_is_leader", "1 while this replica holds the leader Lease.")
LEASE_RENEW_FAILURES = Counter("kruise_manager_lease_renew_failures", "Failed attempts to renew the leader Lease.")
LEADER_TRANSITIONS = Counter("kruise_manager_leader_acquired", "Times this replica acquired the leader Lease.")
WEBHOOK_REQUESTS = Counter("kruise_manager_webhook_requests", "Admission requests served.", ["path", "result"])
WEBHOOK_LATENCY = Histogram("kruise_manager_webhook_request_duration_seconds", "Admission request handling time.",
                            ["path", "result"],
                            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
WEBHOOK_CONNECTIONS = Counter("kruise_manager_webhook_connections", "TLS connections accepted by the webhook server.")
CERT_EXPIRY = Gauge("kruise_manager_webhook_cert_expiry_timestamp_seconds",
                    "Expiry (unix time) of the webhook serving certificate in use.")
CA_BUNDLE_MISMATCH = Gauge("kruise_manager_webhook_cabundle_mismatch",
                           "1 while a webhook configuration's caBundle does not hold the serving CA.", ["configuration"])
MEMO_ANSWERS = Counter("kruise_manager_webhook_memo_answers",
                       "Pod admission answers by the memo's outcome: hit (reused), first (computed, "
                       "its key met for the first time and remembered), miss (computed, its key met "
                       "before), bypass (a request the memo cannot key, computed).", ["result"])
MEMO_PROBES = Counter("kruise_manager_webhook_memo_probes",
                      "Extra computations of an answer for a probe (the second time a request's key is met).")
STATUS_WRITES = Counter("kruise_manager_sidecarset_status_writes", "SidecarSet status updates written.")


WORKER_RESTARTS = Counter("kruise_manager_worker_restarts",
                          "Restarts of the manager's worker process by its supervisor, by why it ended "
                          "(killed: a signal such as SIGKILL or the OOM killer's; exited; hung: killed by the "
                          "supervisor's liveness watchdog).", ["reason"])
PEER_PROBES = Counter("kruise_manager_webhook_peer_probes",
                      "Probes of the peers' webhook servers (HTTPS /healthz on their pod IPs), by result.", ["result"])
PEERS_UNREACHABLE = Gauge("kruise_manager_webhook_peers_unreachable",
                          "Peers this replica cannot reach now (failed --webhook-peer-failure-threshold probes in a row).")
PEER_GATE_WRITES = Counter("kruise_manager_webhook_peer_gate_writes",
                           "Readiness gates kruise.io/webhook-reachable written by the leader (or, False on a silent "
                           "leader, by a follower), by the status written.",
                           ["status"])
PEER_MARKS_WITHHELD = Counter("kruise_manager_webhook_peer_marks_withheld",
                              "Times the leader (or a follower, its silent leader) left an unreachable peer in because "
                              "no reachable replica confirmed it (a leader cut off from its peers takes no one out).")


def serve(address: str, sock=None) -> None:
    """Serve /metrics on ``host:port`` (``:8080`` means all addresses), or on ``sock`` (a
    listening socket the supervisor keeps); ``0`` disables."""
    if address in ("0", ""):
        return
    if sock is not None:
        import threading

        from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler, make_wsgi_app

        from .listeners import adopt

        server = adopt(ThreadingWSGIServer, _SilentHandler, sock)
        server.set_app(make_wsgi_app())
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        return
    host, _, port = address.rpartition(":")
    start_http_server(int(port), addr=host or "0.0.0.0")
