"""MEM-MCL: multi-stage evolutionary model merging with meta-data driven curriculum learning."""

__version__ = "0.1.0"
