"""NVIDIA Triton `config.pbtxt` for a model folder, so the same repository serves on Triton."""

from __future__ import annotations

from pathlib import Path

from .model_card import INPUT_NAME, OUTPUT_NAME, TRITON_CONFIG

TEMPLATE = """\
# Triton Inference Server configuration, written by `stylecast export`.
# Serve this whole models/ folder with: tritonserver --model-repository=/path/to/models
name: "{name}"
backend: "onnxruntime"
max_batch_size: 0
input [
  {{
    name: "{input}"
    data_type: TYPE_UINT8
    dims: [ -1, -1, -1, 3 ]
  }}
]
output [
  {{
    name: "{output}"
    data_type: TYPE_UINT8
    dims: [ -1, -1, -1, 3 ]
  }}
]
version_policy: {{ latest: {{ num_versions: 1 }} }}
instance_group [ {{ kind: KIND_AUTO }} ]
"""


def triton_config(name: str) -> str:
    """The config.pbtxt text for model ``name`` (dynamic batch, height and width)."""
    return TEMPLATE.format(name=name, input=INPUT_NAME, output=OUTPUT_NAME)


def write_triton_config(model_dir: Path, name: str) -> Path:
    path = model_dir / TRITON_CONFIG
    path.write_text(triton_config(name))
    return path
