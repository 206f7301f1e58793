"""Evaluation: the eval runner, datasets (built-in and online), Spider, metrics, the speed
benchmark and sample databases.
"""
