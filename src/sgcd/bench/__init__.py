"""Benchmarks behind `sgcd bench NAME`; each module exposes add_arguments(parser) and main(args) -> int."""
