"""Durable state: the prompt database (queue and history) in the data dir."""
