"""Shared building blocks: settings, database, models, storage, presets and imaging."""
