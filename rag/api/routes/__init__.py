"""Thin route modules: parse the request, call plain functions, shape the response."""
