"""Prometheus metrics of one instance; the daemon serves them on /metrics.

Names follow Prometheus conventions; labels carry feed kind, error kind, rule and channel ids, never URLs with secrets.
Counters count what this process did; the stream gauges describe the shared Redis state (same on every instance).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

polls = Counter("monitor_polls", "Feed polls by result (ok, not_modified, error)", ["result"], registry=REGISTRY)
fetch_errors = Counter("monitor_fetch_errors", "Fetch and parse errors by kind", ["kind"], registry=REGISTRY)
entries = Counter("monitor_entries", "Feed entries by outcome (new, seen)", ["outcome"], registry=REGISTRY)
articles = Counter("monitor_articles", "Articles by outcome (extracted: from the page, feed_text: from the feed's "
                   "content/summary/title, duplicate; failed: the page could not be had)", ["outcome"],
                   registry=REGISTRY)
matches = Counter("monitor_matches", "Rule matches", ["rule"], registry=REGISTRY)
alerts = Counter("monitor_alerts", "Alerts submitted to the outbox by kind (new, update)", ["kind"], registry=REGISTRY)
deliveries = Counter("monitor_deliveries", "Channel delivery attempts by result (sent, failed; dead = gave up)",
                     ["channel", "result"], registry=REGISTRY)
operator_alerts = Counter("monitor_operator_alerts", "Operator alerts about failing feeds (failing, recovered)",
                          ["kind"], registry=REGISTRY)
config_reloads = Counter("monitor_config_reloads", "Configuration reloads on SIGHUP by result (ok, failed)",
                         ["result"], registry=REGISTRY)
rule_reloads = Counter("monitor_rule_reloads", "Rule reloads by result (ok, failed)", ["result"], registry=REGISTRY)
worker_restarts = Counter("monitor_worker_restarts",
                          "Worker processes killed on deadline, over their memory bound, or crashed", ["reason"],
                          registry=REGISTRY)
loop_restarts = Counter("monitor_loop_restarts", "Long-running loops restarted after an unexpected error", ["loop"],
                        registry=REGISTRY)
stream_length = Gauge("monitor_stream_length", "Entries in a stream", ["stream"], registry=REGISTRY)
stream_pending = Gauge("monitor_stream_pending", "Delivered but unacknowledged messages", ["stream"], registry=REGISTRY)
stream_lag = Gauge("monitor_stream_lag", "Messages not yet delivered to the group", ["stream"], registry=REGISTRY)
dead_letters = Gauge("monitor_dead_letters", "Messages in a dead-letter stream", ["stream"], registry=REGISTRY)
state_losses = Counter("monitor_state_losses", "Times Redis was found without monitor's state and the schedule was "
                       "rebuilt by this instance", registry=REGISTRY)
redis_up = Gauge("monitor_redis_up", "1 while Redis answers this instance, else 0", registry=REGISTRY)
last_poll_success = Gauge("monitor_last_poll_success_timestamp", "Unix time of the last successful poll",
                          registry=REGISTRY)
source_articles_failing = Gauge("monitor_source_articles_failing",
                                "1 while a source's last pipeline.articles_failing_after pages all failed, else 0",
                                ["source"], registry=REGISTRY)
