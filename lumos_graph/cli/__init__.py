"""The ``lumos-graph`` command: :func:`lumos_graph.cli.main.main` parses the command line and
dispatches to one module per command group (``data``, ``train``).
"""
