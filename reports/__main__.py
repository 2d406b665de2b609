"""`python -m reports`: the report command, `python -m reports.build` (the one a user tries first)."""

from reports.build import main

if __name__ == "__main__":
    raise SystemExit(main())
