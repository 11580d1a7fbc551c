"""Kafka side of Distillery: faust app, topics, wire records, agents, embedded broker and the CLI."""
