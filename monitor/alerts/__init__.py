"""Alerts: settings and channels, rendering, the outbox (once per rule and story), delivery, history.

Public names are re-exported here; see docs/alerts.md.
"""
