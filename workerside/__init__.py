"""Worker-process code that is neither a workflow nor an activity: interceptors, metrics."""
