"""Serving side of Stylecast: ONNX model repository, onnxruntime inference, gRPC server and
clients. Never imports torch, so a server installs light (`pip install 'stylecast[serve]'`)."""
