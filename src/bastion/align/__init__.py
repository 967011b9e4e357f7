"""Alignment: losses as pure functions, log-prob gathering, and short training loops."""
