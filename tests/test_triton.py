"""The Triton config.pbtxt (serving.triton), parsed strictly against Triton's own ModelConfig
schema: batching by Triton when the graph's batch dimension is dynamic, and the unbatched
layout on request."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest
from google.protobuf import text_format
from triton_schema import model_config_module, parse_config

from stylecast.serving.model_card import TRITON_CONFIG
from stylecast.serving.triton import (
    TRITON_MAX_BATCH,
    TRITON_QUEUE_DELAY_US,
    triton_config,
    write_triton_config,
)

BUNDLED_GRAPH = Path(__file__).resolve().parent.parent / "models/starry_night_lite/1/model.onnx"


def test_config_lets_triton_batch_without_the_batch_dimension_in_dims(tmp_path: Path) -> None:
    path = write_triton_config(tmp_path, "starry")
    assert path == tmp_path / TRITON_CONFIG
    config, schema = parse_config(path), model_config_module()
    assert (config.name, config.backend) == ("starry", "onnxruntime")
    assert config.max_batch_size == TRITON_MAX_BATCH > 0
    for tensors, name in ((config.input, "image"), (config.output, "stylised")):
        (tensor,) = tensors
        assert tensor.name == name and tensor.data_type == schema.TYPE_UINT8
        assert list(tensor.dims) == [-1, -1, 3]
    assert config.dynamic_batching.max_queue_delay_microseconds == TRITON_QUEUE_DELAY_US
    assert not config.dynamic_batching.preferred_batch_size
    assert config.version_policy.latest.num_versions == 1


def test_unbatched_config_keeps_the_batch_dimension(tmp_path: Path) -> None:
    config = parse_config(write_triton_config(tmp_path, "starry", max_batch_size=0))
    assert config.max_batch_size == 0
    assert not config.HasField("dynamic_batching")
    assert [list(t.dims) for t in (*config.input, *config.output)] == [[-1, -1, -1, 3]] * 2


def test_queue_delay_is_written_as_given() -> None:
    text = triton_config("m", max_batch_size=4, queue_delay_us=500)
    config = text_format.Parse(text, model_config_module().ModelConfig())
    assert (config.max_batch_size, config.dynamic_batching.max_queue_delay_microseconds) == (4, 500)
    with pytest.raises(ValueError, match="max_batch_size"):
        triton_config("m", max_batch_size=-1)


@pytest.mark.skipif(not BUNDLED_GRAPH.is_file(), reason="bundled model not present")
def test_exported_graphs_have_the_dynamic_leading_batch_dimension_triton_needs() -> None:
    """Triton batches a model only if every input and output has the batch as its first,
    variable dimension: the bundled export's graph does."""
    session = ort.InferenceSession(str(BUNDLED_GRAPH), providers=["CPUExecutionProvider"])
    for tensor in (*session.get_inputs(), *session.get_outputs()):
        batch, height, width, channels = tensor.shape
        assert isinstance(batch, str) and isinstance(height, str) and isinstance(width, str)
        assert channels == 3


MODELS_DIR = BUNDLED_GRAPH.parent.parent.parent
ONNX_TO_TRITON = {"tensor(uint8)": "TYPE_UINT8", "tensor(float)": "TYPE_FP32"}


@pytest.mark.parametrize(
    "config_path", sorted(MODELS_DIR.glob(f"*/{TRITON_CONFIG}")), ids=lambda p: p.parent.name
)
def test_every_bundled_config_agrees_with_its_onnx_graph(config_path: Path) -> None:
    """What Triton is given is what the graph is: the same tensor names, element types and
    shapes (less the batch dimension when Triton batches), for every version."""
    config, schema = parse_config(config_path), model_config_module()
    assert config.name == config_path.parent.name
    graphs = sorted(config_path.parent.glob("*/model.onnx"))
    assert graphs, f"no versions under {config_path.parent}"
    for graph in graphs:
        session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        for declared, actual in (
            (config.input, session.get_inputs()),
            (config.output, session.get_outputs()),
        ):
            assert [t.name for t in declared] == [t.name for t in actual]
            for tensor, onnx_tensor in zip(declared, actual, strict=True):
                assert schema.DataType.Name(tensor.data_type) == ONNX_TO_TRITON[onnx_tensor.type]
                shape = onnx_tensor.shape[1:] if config.max_batch_size > 0 else onnx_tensor.shape
                assert list(tensor.dims) == [d if isinstance(d, int) else -1 for d in shape]
