"""Monitoring benchmark: drift and skew reports over 1M served vectors vs Evidently's preset."""
