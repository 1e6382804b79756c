"""Training: recipes, the paper's schedule and optimizer, the run loop and its events stream."""
