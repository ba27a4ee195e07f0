"""The benchmark harness behind scripts/bench: data set, load, yardsticks, report."""
