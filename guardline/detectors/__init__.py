"""Detectors (PII, toxicity, stereotype), the engine that runs them and the policy that
turns their findings into actions."""
