"""Training data: prepared face datasets, synthetic sources with exact ground truth, pair samplers."""
