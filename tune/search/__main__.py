"""`python -m tune.search`: see tune.search.cli."""

from tune.search.cli import main

raise SystemExit(main())
