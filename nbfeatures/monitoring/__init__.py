"""Monitoring: drift, training/serving skew and freshness reports, their storage and review.

Reports run on Evidently for their pages and on our own statistics for their verdicts; each
is saved as an MLflow run of the monitoring experiment (HTML page, JSON summary, executed
notebook). Nothing here is imported by ``nbfeatures`` itself: Evidently loads on first use.
"""
