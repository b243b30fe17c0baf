"""Powertools logger, metrics and tracer, created once and shared by every function."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

METRICS_NAMESPACE = "Offload"

# The service name comes from POWERTOOLS_SERVICE_NAME, set per function in template.yaml.
logger = Logger()
metrics = Metrics(namespace=METRICS_NAMESPACE)
tracer = Tracer()
