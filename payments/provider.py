"""A simulated payment provider: declines a share of charges, takes its time, or is down.

Its behaviour comes from `ProviderSettings` (admin), else from PAYMENTS_PROVIDER_* settings.
A call given a `timeout` never charges after it: if the provider would take longer, the call
waits out the timeout and raises `ProviderTimeout` with nothing charged, as a provider honouring
the caller's deadline does.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

from payments.models import ProviderSettings

# What this process's provider did, for the admin and for tests that must know a call has ended.
calls: Counter[str] = Counter()
_lock = threading.Lock()


class ProviderUnavailable(Exception):
    pass


class ProviderTimeout(ProviderUnavailable):
    pass


@dataclass(frozen=True)
class ChargeResult:
    captured: bool
    reference: str = ""
    reason: str = ""


def _count(outcome: str) -> None:
    with _lock:
        calls[outcome] += 1


def charge(*, amount: Decimal, currency: str, key: str, timeout: float | None = None) -> ChargeResult:
    config = ProviderSettings.current()
    if config.down:
        _count("down")
        raise ProviderUnavailable("the payment provider is down")
    latency = config.latency_ms / 1000
    if timeout is not None and latency > timeout:
        time.sleep(max(timeout, 0.0))
        _count("timed_out")
        raise ProviderTimeout(f"the payment provider did not answer within {timeout:.2f} s; nothing was charged")
    time.sleep(latency)
    if random.random() < config.failure_rate:
        _count("declined")
        return ChargeResult(captured=False, reason="card declined by the provider")
    _count("captured")
    return ChargeResult(captured=True, reference=f"ch_{uuid.uuid4().hex[:20]}")


def refund(*, reference: str, amount: Decimal, currency: str) -> None:
    if ProviderSettings.current().down:
        _count("down")
        raise ProviderUnavailable("the payment provider is down")
    _count("refunded")
