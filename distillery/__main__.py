"""`python -m distillery ...` runs the same CLI as the `distillery` console script."""

from __future__ import annotations

from distillery.cli import main

if __name__ == "__main__":
    main()
