"""The recovery wing: retrying failed images, as the product does it (not by hand)."""
