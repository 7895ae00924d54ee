"""Evaluation: detector quality on labeled data (and, later, re-evaluation jobs)."""
