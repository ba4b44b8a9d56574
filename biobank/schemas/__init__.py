"""Marshmallow schemas at the API edge, one module per topic."""
