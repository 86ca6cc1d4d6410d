"""Speed claims: each bench_*.py measures ratios side by side in one run (`make bench`)."""
