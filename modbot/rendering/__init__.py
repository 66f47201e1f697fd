"""Rendering through the worker process, with its time and memory limits."""
