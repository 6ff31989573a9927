"""Stages: one function per command, callable from Python and from the CLI."""
