"""`imgproc`: upload images to the service and follow their processing from a terminal.

Modules, from the outside in:

- `main`: argument parsing, logging, exit codes, and the one place that turns expected
  failures into messages instead of tracebacks;
- `commands`: what `upload` and `status` do;
- `uploads` (streamed, retried, concurrent uploads) and `watch` (the project's WebSocket,
  or polling when it fails);
- `api` (the HTTP calls), `discovery` (which files to send), `outcome` (results and exit
  codes) and `render` (everything printed).

Exceptions:

    CliError             fatal: stop everything, exit 2 (connection, bad key, usage)
    ApiError             one HTTP answer that is an error, with the API's code and message
"""
