"""Offload: a serverless origin that keeps an API's servers out of the byte path."""
