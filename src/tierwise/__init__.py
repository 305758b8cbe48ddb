"""tierwise: send each LLM request to the cheapest model that can handle it,
and catch what goes wrong.

Importing the package builds no client and loads no model.
"""

from tierwise.config import GatewayConfig, load_config, parse_config
from tierwise.errors import (
    AllAttemptsFailedError,
    ConfigError,
    ErrorKind,
    ProviderError,
    RouteNotFoundError,
    StreamInterruptedError,
    TierwiseError,
)
from tierwise.gateway import ChatResult, Gateway, Origin
from tierwise.record import AttemptRecord, CostBreakdown, Decision, RequestRecord
from tierwise.streaming import ChatStream
from tierwise.sync import SyncGateway
from tierwise.types import ChatRequest, ChatResponse, Message, StreamDelta, Usage

__version__ = "0.1.0"

__all__ = [
    "AllAttemptsFailedError",
    "AttemptRecord",
    "ChatRequest",
    "ChatResponse",
    "ChatResult",
    "ChatStream",
    "ConfigError",
    "CostBreakdown",
    "Decision",
    "ErrorKind",
    "Gateway",
    "GatewayConfig",
    "Message",
    "Origin",
    "ProviderError",
    "RequestRecord",
    "RouteNotFoundError",
    "StreamDelta",
    "StreamInterruptedError",
    "SyncGateway",
    "TierwiseError",
    "Usage",
    "load_config",
    "parse_config",
]
