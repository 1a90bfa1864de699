"""The remote twin of ``stylecast.api``: ``connect`` to a Stylecast server, then
``.model(NAME).stylise(...)`` takes and gives the same kinds of image, with the same options,
as a local model, over gRPC (serving.client and serving.codec).

    import stylecast

    with stylecast.connect("localhost:50051", token="…") as server:
        picture = server.model("starry_night_lite").stylise("photo.jpg", strength=0.8)

What travels: a path's file as it is (the server decodes it, EXIF orientation included); an
opaque array or Pillow image as raw RGB; a transparent one as a PNG. Replies come back as raw
RGB, or as a PNG where the alpha must come back too. Errors the server answers with are
``serving.client.ServerError`` (a StylecastError, with the gRPC status ``code``); a bad input
or option is refused here, before any call, as a local model refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import overload

import numpy as np
from PIL import Image

from stylecast.errors import StylecastError
from stylecast.serving.client import DEFAULT_TIMEOUT_S, StylecastClient
from stylecast.serving.codec import (
    REPLY_MAX_PIXELS,
    ImageInput,
    image_from_message,
    request_options,
)
from stylecast.serving.imaging import RAW, encode, orient, read_image
from stylecast.v1 import stylise_pb2 as pb

from .image_kinds import ImageLike, Input, PathLike, give_back, read_input, stylise_options

PNG = "png"  # lossless and carries alpha: what a transparent image travels as


def connect(
    target: str,
    *,
    token: str | None = None,
    tls: bool = False,
    root_certificates: bytes | None = None,
    client_key: bytes | None = None,
    client_cert: bytes | None = None,
    timeout: float | None = DEFAULT_TIMEOUT_S,
) -> Connection:
    """A connection to the server at ``target`` ("host:port"). ``token``: bearer token;
    ``tls=True`` (system roots) or ``root_certificates`` (PEM): TLS; ``client_key`` and
    ``client_cert`` (PEM): a client certificate; ``timeout``: seconds per call. It connects
    on the first call; close it when done (or use ``with``)."""
    client = StylecastClient(
        target,
        token=token,
        tls=tls,
        root_certificates=root_certificates,
        client_key=client_key,
        client_cert=client_cert,
        timeout=timeout,
    )
    return Connection(client)


class Connection:
    """An open connection to a Stylecast server: ``model(NAME)``, ``models()``, ``close()``."""

    def __init__(self, client: StylecastClient) -> None:
        self._client = client
        self._closed = False

    @property
    def target(self) -> str:
        return self._client.target

    def model(self, name: str) -> RemoteModel:
        """The server's model ``name``; ServerError (NOT_FOUND) when it serves none by that
        name, (UNAVAILABLE) when the server cannot be reached."""
        return RemoteModel(self, self.client().model(name))

    def models(self) -> list[str]:
        """The names of the models the server has loaded, sorted."""
        return sorted(card.name for card in self.client().models())

    def client(self) -> StylecastClient:
        """The underlying StylecastClient (streams, health, reload); refuses a closed one."""
        if self._closed:
            raise StylecastError(f"the connection to {self.target} is closed")
        return self._client

    def close(self) -> None:
        self._closed = True
        self._client.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<stylecast.Connection {self.target} ({state})>"


class RemoteModel:
    """A model served by a Stylecast server, with the ``stylise`` of a local model."""

    def __init__(self, connection: Connection, card: pb.ModelCard) -> None:
        self._connection = connection
        self._card = card

    @property
    def name(self) -> str:
        return self._card.name

    @property
    def version(self) -> int:
        """The version the server was serving when this object was made."""
        return self._card.version

    @property
    def card(self) -> pb.ModelCard:
        """The model card as the server sent it (stylecast.v1.ModelCard); treat it as
        read-only."""
        return self._card

    @property
    def styles(self) -> list[str]:
        """A multi-style model's style names, in order (the first is the default); empty
        for a single-style model."""
        return [style.name for style in self._card.styles]

    def __repr__(self) -> str:
        return f"<stylecast.RemoteModel {self.name} v{self.version} at {self._connection.target}>"

    @overload
    def stylise(
        self,
        image: np.ndarray,
        *,
        strength: float = 1.0,
        preserve_color: bool = False,
        max_side: int = 0,
        style: str = "",
        mix: Mapping[str, float] | None = None,
    ) -> np.ndarray: ...

    @overload
    def stylise(
        self,
        image: PathLike | Image.Image,
        *,
        strength: float = 1.0,
        preserve_color: bool = False,
        max_side: int = 0,
        style: str = "",
        mix: Mapping[str, float] | None = None,
    ) -> Image.Image: ...

    def stylise(
        self,
        image: ImageLike,
        *,
        strength: float = 1.0,
        preserve_color: bool = False,
        max_side: int = 0,
        style: str = "",
        mix: Mapping[str, float] | None = None,
    ) -> Image.Image | np.ndarray:
        """Stylise ``image`` on the server: the arguments, and the kind of image returned,
        as ``stylecast.api.Model.stylise``."""
        options = stylise_options(strength, preserve_color, max_side, style, mix)
        source = read_input(image)
        payload, encoding = _payload(source)
        request = request_options(
            options.strength,
            options.preserve_color,
            options.max_side,
            encoding,
            style=options.style,
            mix=dict(options.mix),
        )
        reply = self._connection.client().stylise(payload, self.name, request)
        pixels = read_image(image_from_message(reply.image), REPLY_MAX_PIXELS)
        return give_back(source, pixels.rgb, pixels.alpha)


def _payload(source: Input) -> tuple[ImageInput, str]:
    """What to send for ``source``, and the encoding to ask the reply in."""
    if source.data is not None:
        return source.data, PNG  # the file as it is; a PNG reply keeps any transparency
    assert source.pixels is not None
    pixels = orient(source.pixels)
    if pixels.alpha is None:
        return pixels.rgb, RAW
    return encode(np.dstack((pixels.rgb, pixels.alpha)), PNG), PNG
