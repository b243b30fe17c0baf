"""The demo deployment's own feeds and collections, kept apart from the product."""
