"""Drivers: each acts on one instrument resource and speaks the project's exceptions."""
