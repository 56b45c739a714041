"""Intake: getting an image in. `ImageIntake` owns both upload flows (register, start the
workflow, undo); the streaming ingress, the multipart parser and upload links serve it."""
