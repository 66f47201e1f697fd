"""Test doubles that speak real protocols (see ``tests.fakes.reddit``)."""
