"""Operations: Prometheus metrics and request observability (logs, the image-state gauge)."""
