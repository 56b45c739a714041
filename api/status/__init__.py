"""The read side: queries, the public views of images and projects, live progress from the
workflow, and the hub that fans Postgres events out to WebSockets."""
