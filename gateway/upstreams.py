"""The gRPC services the gateway fronts: one long-lived channel per upstream,
one multi-callable per routed method, and the health checks behind /readyz."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.bindings import Binding, bindings_for
from research_common.constants import MAX_MESSAGE_BYTES
from research_common.targets import channel_options
from research_common.tls import TlsSettings


@dataclass(frozen=True)
class Upstream:
    """The gRPC servers at `address` (a target: research_common.targets)
    serving `services`; `name` is how errors and /readyz refer to it
    ("experiments", "tracking")."""

    name: str
    address: str
    services: tuple[ServiceDescriptor, ...]


@dataclass
class Connected:
    upstream: Upstream
    channel: aio.Channel
    calls: dict[str, aio.UnaryUnaryMultiCallable[Any, Any]] = field(default_factory=dict)


class Upstreams:
    """Channels are opened by `open()` (inside the server's event loop) and
    closed by `close()`; bindings are known before either."""

    def __init__(self, upstreams: Sequence[Upstream], tls: TlsSettings | None = None) -> None:
        self._upstreams = list(upstreams)
        self._tls = tls or TlsSettings()
        self.bindings: list[Binding] = [
            binding
            for upstream in upstreams
            for service in upstream.services
            for binding in bindings_for(service, upstream.name)
        ]
        self._connected: dict[str, Connected] = {}

    @property
    def names(self) -> list[str]:
        return [u.name for u in self._upstreams]

    def open(self) -> None:
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # Reconnect quickly after an upstream restart: the default backoff
            # grows to two minutes, during which calls fail fast as UNAVAILABLE.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        for upstream in self._upstreams:
            # round_robin over every address of the target, and a retry on
            # UNAVAILABLE for the methods that change nothing (CONTRACT §13).
            services = [service.full_name for service in upstream.services]
            channel = self._tls.channel(upstream.address, options + channel_options(services))
            self._connected[upstream.name] = Connected(upstream, channel)
        for binding in self.bindings:
            connected = self._connected[binding.upstream]
            if binding.rpc_path not in connected.calls:
                connected.calls[binding.rpc_path] = connected.channel.unary_unary(
                    binding.rpc_path,
                    request_serializer=_serialize,
                    response_deserializer=binding.response_class.FromString,
                )

    async def close(self) -> None:
        for connected in self._connected.values():
            await connected.channel.close(grace=None)
        self._connected.clear()

    async def call(
        self, binding: Binding, request: Message, deadline: float, metadata: list[tuple[str, str]]
    ) -> Message:
        """Call the binding's method with a gRPC deadline of `deadline`
        seconds; raises aio.AioRpcError on failure."""
        call = self._connected[binding.upstream].calls[binding.rpc_path]
        response: Message = await call(request, timeout=deadline, metadata=metadata)
        return response

    async def health(self, deadline: float) -> dict[str, str]:
        """Each upstream's overall health status name, checked concurrently:
        SERVING, NOT_SERVING, or the gRPC code name when the check failed."""
        names = list(self._connected)
        results = await asyncio.gather(
            *(self._check(self._connected[name].channel, deadline) for name in names)
        )
        return dict(zip(names, results, strict=True))

    @staticmethod
    async def _check(channel: aio.Channel, deadline: float) -> str:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=deadline)
        except aio.AioRpcError as error:
            code: grpc.StatusCode = error.code()
            return code.name
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    def address(self, name: str) -> str:
        return next(u.address for u in self._upstreams if u.name == name)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()
