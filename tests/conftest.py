"""Session-wide fixtures: each real server lives in its own plugin module."""

pytest_plugins = [
    "tests.support.cluster_fixtures",
    "tests.support.git_fixtures",
]
