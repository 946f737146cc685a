"""python -m study: see `study.cli`."""

from study.cli import main

main()
