"""Figures (matplotlib, Agg) and the HTML report."""
