"""The server's inference step (``pipeline.Infer``) for one call: wait for an inference slot,
or join a batch (``--max-batch`` > 1, serving.batcher); run the network; stop the run when the
call ends; count the outcome. Only this step holds a slot: the pipeline decodes, blends and
encodes on the handler's thread, before and after it.

Unbatched (the default), each call's run is stopped when its call ends (``calls.RunStopper``).
Batched, a call that ends only leaves its batch; the run stops when no call is left in it.
Outcomes are counted per image: ``stylecast_inferences_total{outcome}`` ok, failed, or
terminated (the call ended during the run, whether the run stopped or went on for others)."""

from __future__ import annotations

import time
from typing import TypeAlias

import grpc
import numpy as np

from . import pipeline
from .batcher import Caller, MicroBatcher
from .calls import RunStopper
from .config import ServerConfig
from .limits import CallAbandoned, InferenceLimiter, Overloaded
from .metrics import ServerMetrics
from .runtime import StyleModel

# What ties one call (a unary call, or a whole stream) to its inferences.
CallLink: TypeAlias = RunStopper | Caller


class ServerInference:
    """The limiter, the batcher (None: unbatched) and the step built on them."""

    def __init__(self, config: ServerConfig, metrics: ServerMetrics) -> None:
        self.metrics = metrics
        self.limiter = InferenceLimiter(
            config.max_concurrent_inferences, config.max_queue, config.max_queue_wait_s
        )
        self.batcher: MicroBatcher | None = None
        if config.max_batch > 1:
            self.batcher = MicroBatcher(
                self.limiter,
                config.max_batch,
                config.batch_window_ms / 1000,
                on_batch=lambda model, size: metrics.batch_size.labels(model).observe(size),
            )
            batcher = self.batcher
            metrics.inferences_running.set_function(lambda: batcher.running)
            metrics.inference_queue.set_function(lambda: batcher.waiting)
        else:
            metrics.inferences_running.set_function(lambda: self.limiter.running)
            metrics.inference_queue.set_function(lambda: self.limiter.waiting)

    def link(self, context: grpc.ServicerContext) -> CallLink:
        """What stops or drops this call's inferences when the call ends."""
        if self.batcher is None:
            return RunStopper(context)
        caller = Caller(context.is_active, context.time_remaining)
        if not context.add_callback(caller.end):  # the call has already ended
            caller.end()
        return caller

    def step(self, method: str, context: grpc.ServicerContext, link: CallLink) -> pipeline.Infer:
        """The pipeline's inference step for one call. No inference starts for a call that is
        already cancelled or past its deadline."""

        def infer(
            model: StyleModel, content: np.ndarray, weights: np.ndarray | None
        ) -> pipeline.Inferred:
            try:
                if isinstance(link, Caller):
                    assert self.batcher is not None
                    inferred = self.batcher.infer(model, content, link, weights)
                else:
                    inferred = self._run_alone(model, content, context, link, weights)
            except CallAbandoned as exc:
                self.metrics.abandoned.labels(method, exc.stage).inc()
                if exc.stage == "inference":
                    self.metrics.inferences.labels(model.name, "terminated").inc()
                raise
            except Overloaded:  # no slot: nothing ran
                raise
            except Exception:
                self.metrics.inferences.labels(model.name, "failed").inc()
                raise
            self.metrics.inferences.labels(model.name, "ok").inc()
            return inferred

        return infer

    def _run_alone(
        self,
        model: StyleModel,
        content: np.ndarray,
        context: grpc.ServicerContext,
        stopper: RunStopper,
        weights: np.ndarray | None = None,
    ) -> pipeline.Inferred:
        """One image, one slot; the run is stopped (``run_options.terminate``) when the call
        ends."""
        with self.limiter.slot(context.is_active, context.time_remaining) as queue_s:
            run_options = stopper.new()
            start = time.perf_counter()
            try:
                out = model.run(content, run_options, weights)
            except Exception:
                if not run_options.terminate:
                    raise
                remaining = context.time_remaining()
                raise CallAbandoned(
                    "call ended during inference; inference stopped",
                    deadline=remaining is not None and remaining <= 0,
                    stage="inference",
                ) from None
            return pipeline.Inferred(out, queue_s, time.perf_counter() - start)
