"""Losses that more than one method's training uses (perceptual features)."""
