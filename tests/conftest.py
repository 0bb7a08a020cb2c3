"""Settings every test process needs before anything imports Ray or a model hub client.

Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when it is imported: "0" keeps a local test
cluster on 127.0.0.1 instead of the machine's interface address. The Makefile exports the
same values; this covers a plain `pytest` run.
"""

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
