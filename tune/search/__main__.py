"""`python -m tune.search`: see tune.search.cli."""

from data.files import warnings_as_lines
from tune.search.cli import main

warnings_as_lines()  # the command's, not a caller's that imports main (a test)
raise SystemExit(main())
