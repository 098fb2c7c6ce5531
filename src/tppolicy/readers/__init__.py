"""Readers for the inputs people hand in: one reader per kind of input.

`source` reads a text file (UTF-8, the bad byte's line and column on failure).
Nothing here knows about providers, publishers or decisions.
"""
