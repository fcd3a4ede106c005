"""Figures shared by validation and pixel maps (matplotlib, Agg); no science is computed here."""
