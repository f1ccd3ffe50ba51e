"""Knowledge bases (datasets). The dataset resource only, so far."""
