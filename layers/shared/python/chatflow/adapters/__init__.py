"""Implementations of the ports over AWS services."""
