"""Pytest fixtures for the fakes in this folder (registered by tests/conftest.py)."""
