"""Datasets: the paper's specs, their sources (tfds, official archives, ImageFolder) and the input pipeline."""
