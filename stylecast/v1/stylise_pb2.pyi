from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCODING_UNSPECIFIED: _ClassVar[Encoding]
    ENCODING_JPEG: _ClassVar[Encoding]
    ENCODING_PNG: _ClassVar[Encoding]
    ENCODING_WEBP: _ClassVar[Encoding]
    ENCODING_RAW_RGB: _ClassVar[Encoding]
ENCODING_UNSPECIFIED: Encoding
ENCODING_JPEG: Encoding
ENCODING_PNG: Encoding
ENCODING_WEBP: Encoding
ENCODING_RAW_RGB: Encoding

class Image(_message.Message):
    __slots__ = ("data", "encoding", "width", "height")
    DATA_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    encoding: Encoding
    width: int
    height: int
    def __init__(self, data: _Optional[bytes] = ..., encoding: _Optional[_Union[Encoding, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class StyliseOptions(_message.Message):
    __slots__ = ("strength", "preserve_color", "max_side", "output_encoding", "quality", "style", "style_mix")
    class StyleMixEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    PRESERVE_COLOR_FIELD_NUMBER: _ClassVar[int]
    MAX_SIDE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_ENCODING_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    STYLE_FIELD_NUMBER: _ClassVar[int]
    STYLE_MIX_FIELD_NUMBER: _ClassVar[int]
    strength: float
    preserve_color: bool
    max_side: int
    output_encoding: Encoding
    quality: int
    style: str
    style_mix: _containers.ScalarMap[str, float]
    def __init__(self, strength: _Optional[float] = ..., preserve_color: _Optional[bool] = ..., max_side: _Optional[int] = ..., output_encoding: _Optional[_Union[Encoding, str]] = ..., quality: _Optional[int] = ..., style: _Optional[str] = ..., style_mix: _Optional[_Mapping[str, float]] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("decode_ms", "queue_ms", "inference_ms", "encode_ms", "total_ms")
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    ENCODE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    decode_ms: float
    queue_ms: float
    inference_ms: float
    encode_ms: float
    total_ms: float
    def __init__(self, decode_ms: _Optional[float] = ..., queue_ms: _Optional[float] = ..., inference_ms: _Optional[float] = ..., encode_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class StyliseRequest(_message.Message):
    __slots__ = ("model", "image", "options")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    model: str
    image: Image
    options: StyliseOptions
    def __init__(self, model: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., options: _Optional[_Union[StyliseOptions, _Mapping]] = ...) -> None: ...

class StyliseResponse(_message.Message):
    __slots__ = ("image", "model", "model_version", "timings")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    image: Image
    model: str
    model_version: int
    timings: Timings
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., model: _Optional[str] = ..., model_version: _Optional[int] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ...) -> None: ...

class StyliseStreamRequest(_message.Message):
    __slots__ = ("sequence", "model", "image", "options", "max_pending")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_PENDING_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    model: str
    image: Image
    options: StyliseOptions
    max_pending: int
    def __init__(self, sequence: _Optional[int] = ..., model: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., options: _Optional[_Union[StyliseOptions, _Mapping]] = ..., max_pending: _Optional[int] = ...) -> None: ...

class FrameError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class StyliseStreamResponse(_message.Message):
    __slots__ = ("sequence", "image", "model", "model_version", "timings", "dropped", "error")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    image: Image
    model: str
    model_version: int
    timings: Timings
    dropped: _containers.RepeatedScalarFieldContainer[int]
    error: FrameError
    def __init__(self, sequence: _Optional[int] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., model: _Optional[str] = ..., model_version: _Optional[int] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., dropped: _Optional[_Iterable[int]] = ..., error: _Optional[_Union[FrameError, _Mapping]] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("version", "precision", "opset", "created", "sha256", "parity_passed")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    OPSET_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    PARITY_PASSED_FIELD_NUMBER: _ClassVar[int]
    version: int
    precision: str
    opset: int
    created: str
    sha256: str
    parity_passed: bool
    def __init__(self, version: _Optional[int] = ..., precision: _Optional[str] = ..., opset: _Optional[int] = ..., created: _Optional[str] = ..., sha256: _Optional[str] = ..., parity_passed: _Optional[bool] = ...) -> None: ...

class Style(_message.Message):
    __slots__ = ("name", "image", "sha256", "thumbnail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    image: str
    sha256: str
    thumbnail: str
    def __init__(self, name: _Optional[str] = ..., image: _Optional[str] = ..., sha256: _Optional[str] = ..., thumbnail: _Optional[str] = ...) -> None: ...

class ModelCard(_message.Message):
    __slots__ = ("name", "version", "latest_version", "versions", "provider", "description", "testing_only", "style_image", "style_sha256", "style_thumbnail", "vgg_weights", "final_losses", "train_config_json", "train_command", "exporter", "io_json", "styles")
    class FinalLossesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TESTING_ONLY_FIELD_NUMBER: _ClassVar[int]
    STYLE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    STYLE_SHA256_FIELD_NUMBER: _ClassVar[int]
    STYLE_THUMBNAIL_FIELD_NUMBER: _ClassVar[int]
    VGG_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    FINAL_LOSSES_FIELD_NUMBER: _ClassVar[int]
    TRAIN_CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    TRAIN_COMMAND_FIELD_NUMBER: _ClassVar[int]
    EXPORTER_FIELD_NUMBER: _ClassVar[int]
    IO_JSON_FIELD_NUMBER: _ClassVar[int]
    STYLES_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    latest_version: int
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    provider: str
    description: str
    testing_only: bool
    style_image: str
    style_sha256: str
    style_thumbnail: str
    vgg_weights: str
    final_losses: _containers.ScalarMap[str, float]
    train_config_json: str
    train_command: str
    exporter: str
    io_json: str
    styles: _containers.RepeatedCompositeFieldContainer[Style]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., latest_version: _Optional[int] = ..., versions: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ..., provider: _Optional[str] = ..., description: _Optional[str] = ..., testing_only: _Optional[bool] = ..., style_image: _Optional[str] = ..., style_sha256: _Optional[str] = ..., style_thumbnail: _Optional[str] = ..., vgg_weights: _Optional[str] = ..., final_losses: _Optional[_Mapping[str, float]] = ..., train_config_json: _Optional[str] = ..., train_command: _Optional[str] = ..., exporter: _Optional[str] = ..., io_json: _Optional[str] = ..., styles: _Optional[_Iterable[_Union[Style, _Mapping]]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("include_thumbnails",)
    INCLUDE_THUMBNAILS_FIELD_NUMBER: _ClassVar[int]
    include_thumbnails: bool
    def __init__(self, include_thumbnails: _Optional[bool] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelCard]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelCard, _Mapping]]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: ModelCard
    def __init__(self, model: _Optional[_Union[ModelCard, _Mapping]] = ...) -> None: ...

class ReloadModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadModelsResponse(_message.Message):
    __slots__ = ("loaded", "removed", "failed")
    class FailedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LOADED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    loaded: _containers.RepeatedScalarFieldContainer[str]
    removed: _containers.RepeatedScalarFieldContainer[str]
    failed: _containers.ScalarMap[str, str]
    def __init__(self, loaded: _Optional[_Iterable[str]] = ..., removed: _Optional[_Iterable[str]] = ..., failed: _Optional[_Mapping[str, str]] = ...) -> None: ...
