"""Adapters: how the core reaches a live system. Only these touch a cluster."""
