"""Side effects of image processing, as classes constructed with their clients."""
