"""The overhead benchmark harness, by concern; bench/overhead.py is its entry point."""
