"""Standard gRPC health checking (grpc.health.v1) for the server: the service names, and their
statuses kept in step with the loaded models.

"" and "stylecast.v1.Stylecast" are SERVING while at least one model is loaded;
"stylecast.v1.Stylecast/<model>" is SERVING while that model is loaded, NOT_SERVING while its
folder holds no version that loads (a bad card, broken graphs) and after it is removed.
Everything turns NOT_SERVING, at once, when shutdown begins (the drain).
"""

from __future__ import annotations

import threading
from collections.abc import Set as AbstractSet

from grpc_health.v1 import health, health_pb2

from stylecast.v1 import stylise_pb2 as pb

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Stylecast"].full_name  # "stylecast.v1.Stylecast"
HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def model_health_name(model: str) -> str:
    """The health-service name of one model: ``stylecast.v1.Stylecast/<model>``."""
    return f"{SERVICE_NAME}/{model}"


class ModelHealth:
    """The health service of one server (``servicer``) and the statuses it reports."""

    def __init__(self) -> None:
        self.servicer = health.HealthServicer()
        self._models: set[str] = set()
        self._lock = threading.Lock()

    def update(self, loaded: AbstractSet[str], failed: AbstractSet[str] = frozenset()) -> None:
        """Report ``loaded`` (the names of the loaded models) as SERVING; ``failed`` (models
        in the repository that did not load) and models known before and gone now as
        NOT_SERVING; and the server as a whole."""
        with self._lock:
            for name in loaded:
                self.servicer.set(model_health_name(name), SERVING)
            for name in (failed | self._models) - loaded:
                self.servicer.set(model_health_name(name), NOT_SERVING)
            overall = SERVING if loaded else NOT_SERVING
            self.servicer.set("", overall)
            self.servicer.set(SERVICE_NAME, overall)
            self._models = set(loaded) | set(failed)

    def shutdown(self) -> None:
        """Shutdown has begun: every service is NOT_SERVING from now on."""
        self.servicer.enter_graceful_shutdown()
