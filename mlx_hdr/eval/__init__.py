"""Evaluation: metrics and the side-by-side comparison of methods on a paired dataset."""
