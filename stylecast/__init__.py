"""Stylecast: real-time neural style transfer that you train, ship and serve.

This package holds what every part shares without heavy imports: the CLI,
the user-facing error type and the generated gRPC API (``stylecast.v1``).
``stylecast.training`` needs torch; ``stylecast.serving`` never imports it.
"""

__version__ = "0.1.0"
