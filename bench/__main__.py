"""`python -m bench`: the full benchmark (bench.harness), as `make bench` runs it."""

from bench.harness import main

main()
