"""Allow `python -m adapters`, which behaves exactly like the `adapters` console script."""

from adapters.cli.main import main

raise SystemExit(main())
