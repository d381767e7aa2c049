"""Benchmarks that print CONFIG and RESULTS, in the manner of Narwhal's harness."""
