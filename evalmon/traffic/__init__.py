"""Synthetic LLM traffic (``evalmon traffic synth``) built from real public text, with ground truth."""
