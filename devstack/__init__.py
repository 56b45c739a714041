"""Real local services (Postgres, Temporal, SeaweedFS S3) for `make run` and the test suite.

Everything binds to 127.0.0.1 and every port can be chosen, so a test stack on free ports
never collides with a running `make run`.

Exceptions:

    RuntimeError
     ├── StartupError        a service or child process did not become ready
     └── CrashLoopError      a supervised process crashed at start too many times in a row
    ValueError
     └── StackConfigError    the environment asks for an external service but is incomplete
"""
