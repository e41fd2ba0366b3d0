"""The ``minictr`` command line: :mod:`~minictr.cli.main` parses and dispatches,
one module per group of verbs (run, containers, inspect, images, build and volumes, system, compose).
"""
