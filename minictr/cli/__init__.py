"""The ``minictr`` command line: :mod:`~minictr.cli.main` parses and dispatches,
one module per group of verbs (images, containers, inspect, build and volumes).
"""
