"""Benchmarks of the methods, run as ``facehub bench METHOD`` (each module's ``main(argv) -> int``)."""
