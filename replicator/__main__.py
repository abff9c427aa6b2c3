"""`python -m replicator` runs the command-line interface."""

from replicator.cli import main

raise SystemExit(main())
