"""`python -m cli`, the same as the `imgproc` console script."""

from cli.main import main

raise SystemExit(main())
