"""Readers for the inputs people hand in: one reader per kind of input.

`source` reads a text file (UTF-8, the bad byte's line and column on failure); `claims` reads
a claims document (one JSON object: no key twice, no NaN, no lone surrogate).
Nothing here knows about providers, publishers or decisions.
"""
