"""Command-line tools of AI-Subs, one per file (run as ``python scripts/NAME.py``).

``scripts.harness`` (a whole service in a subprocess, an API client that rides out
outages, percentiles, result files) is shared by the verification scripts.
"""
