"""The browser camera page (`stylecast web`): a page that sends webcam frames over a WebSocket
and shows them stylised, served by aiohttp over the same pipeline, limits, token check and
metrics as the gRPC server. ``protocol`` (the messages), ``session`` (one connection's
frames), ``app`` (HTTP and WebSocket), ``serve`` (the foreground process), ``thread`` (in a
background thread), ``config``, ``browser`` (drives the page in Chromium, for tests);
the page itself is in ``static/``."""
