"""gitopsd: a standalone, pull-based GitOps reconciliation daemon."""

__version__ = "0.1.0"
