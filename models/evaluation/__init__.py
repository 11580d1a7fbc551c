"""Offline evaluation: test reports, routing curves, system evaluation. Serving never imports it."""
