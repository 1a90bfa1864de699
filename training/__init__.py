"""Training side of Stylecast (needs torch): networks, losses, the Lightning trainer,
the iterative Gatys reference, ONNX export and validation."""
