"""Drift detectors, alerts, Prometheus metrics and Grafana dashboards (no Kafka in here)."""
