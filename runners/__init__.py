"""Runners: score a model on a batch of requests, results in request order."""
