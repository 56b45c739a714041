"""The presets wing: a project's preset sets, and the reprocessing that follows a change."""
