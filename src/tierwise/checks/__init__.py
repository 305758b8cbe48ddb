"""Quality checks and confidence signals run on an answer before it is accepted."""

from tierwise.checks.base import AnswerView, Check, ConfidenceSignal
from tierwise.checks.builtin import (
    CallableCheck,
    EmptyCheck,
    JsonCheck,
    MinLengthCheck,
    PuntCheck,
    RefusalCheck,
)
from tierwise.checks.confidence import LogprobConfidence, SelfReportedConfidence
from tierwise.checks.registry import build_check, build_confidence, register_check

__all__ = [
    "AnswerView",
    "CallableCheck",
    "Check",
    "ConfidenceSignal",
    "EmptyCheck",
    "JsonCheck",
    "LogprobConfidence",
    "MinLengthCheck",
    "PuntCheck",
    "RefusalCheck",
    "SelfReportedConfidence",
    "build_check",
    "build_confidence",
    "register_check",
]
