"""The HTTP surface: app factory, endpoint, provider adapters, upstream transport."""
