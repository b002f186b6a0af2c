"""Samplers: test forms by random, stratified, evolutionary and exact assembly; adaptive testing."""
