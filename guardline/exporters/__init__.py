"""Telemetry, cost, and (later) sample export: everything that leaves Guardline
besides the proxied call itself."""
