"""Trace stage: attribution, balance, and the energy-trace dataset."""
