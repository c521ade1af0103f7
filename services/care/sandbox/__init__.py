"""A stand-in SMS operator for development, tests and benchmarks, run as its own process."""
