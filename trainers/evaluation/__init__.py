"""Evaluations of trained methods on held-out data (``facehub eval METHOD``)."""
