"""Alert-driven re-evaluation: an Alertmanager webhook starts a job that re-scores the
flagged samples of the alert's window against a baseline and publishes a report."""
