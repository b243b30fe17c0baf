"""The demo: Offload's example feeds and collections, a package apart from the product."""
