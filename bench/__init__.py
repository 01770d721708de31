"""The benchmark harness (`make bench`). Never imported by the product."""
