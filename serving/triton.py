"""NVIDIA Triton `config.pbtxt` for a model folder, so the same repository serves on Triton.

The exported graphs take a batch as their first dimension (N, dynamic, as are H and W), so
Triton may batch requests itself: ``max_batch_size`` > 0, tensor dims without the batch
dimension, and Triton's dynamic batcher, which waits up to ``max_queue_delay_microseconds``
for requests to join a batch and only ever batches requests of the same shape (like
``stylecast serve --max-batch``). No preferred batch sizes: any size up to the maximum runs
as well on these graphs. ``max_batch_size`` 0 writes a config without batching (the batch
dimension is then part of each request's shape).

A multi-style model declares its second input, ``style_weights`` (TYPE_FP32, one row of S
weights per image), batched with the images."""

from __future__ import annotations

from pathlib import Path

from .model_card import INPUT_NAME, OUTPUT_NAME, STYLE_WEIGHTS_NAME, TRITON_CONFIG

TRITON_MAX_BATCH = 8
TRITON_QUEUE_DELAY_US = 2000  # as `stylecast serve --batch-window-ms`'s default

HEADER = """\
# Triton Inference Server configuration, written by `stylecast export`.
# Serve this whole models/ folder with: tritonserver --model-repository=/path/to/models
name: "{name}"
backend: "onnxruntime"
max_batch_size: {max_batch_size}
"""

IMAGE_INPUT = """\
  {{
    name: "{input}"
    data_type: TYPE_UINT8
    dims: [ {dims} ]
  }}"""

WEIGHTS_INPUT = """\
  {{
    name: "{name}"
    data_type: TYPE_FP32
    dims: [ {dims} ]
  }}"""

TENSORS = """\
input [
{inputs}
]
output [
  {{
    name: "{output}"
    data_type: TYPE_UINT8
    dims: [ {dims} ]
  }}
]
"""

BATCHING = """\
dynamic_batching {{ max_queue_delay_microseconds: {delay_us} }}
"""

FOOTER = """\
version_policy: { latest: { num_versions: 1 } }
instance_group [ { kind: KIND_AUTO } ]
"""


def triton_config(
    name: str,
    max_batch_size: int = TRITON_MAX_BATCH,
    queue_delay_us: int = TRITON_QUEUE_DELAY_US,
    styles: int = 1,
) -> str:
    """The config.pbtxt text for model ``name``: height and width dynamic; batches of up to
    ``max_batch_size`` formed by Triton within ``queue_delay_us`` (0: no batching, dims
    [N, H, W, 3]); ``styles`` > 1 adds the ``style_weights`` input."""
    if max_batch_size < 0 or queue_delay_us < 0:
        raise ValueError(f"max_batch_size ({max_batch_size}) and queue_delay_us must be >= 0")
    batch = "" if max_batch_size else "-1, "
    dims = f"{batch}-1, -1, 3"
    inputs = [IMAGE_INPUT.format(input=INPUT_NAME, dims=dims)]
    if styles > 1:
        inputs.append(WEIGHTS_INPUT.format(name=STYLE_WEIGHTS_NAME, dims=f"{batch}{styles}"))
    text = HEADER.format(name=name, max_batch_size=max_batch_size)
    text += TENSORS.format(inputs=",\n".join(inputs), output=OUTPUT_NAME, dims=dims)
    if max_batch_size:
        text += BATCHING.format(delay_us=queue_delay_us)
    return text + FOOTER


def write_triton_config(
    model_dir: Path, name: str, max_batch_size: int = TRITON_MAX_BATCH, styles: int = 1
) -> Path:
    """Write ``model_dir/config.pbtxt`` (see ``triton_config``)."""
    path = model_dir / TRITON_CONFIG
    path.write_text(triton_config(name, max_batch_size, styles=styles))
    return path
