"""Thin faust agents: decode, call the domain pipeline, route, encode."""
