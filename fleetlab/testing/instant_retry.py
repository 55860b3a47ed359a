"""An ``AsyncAnthropic`` whose retries wait for nothing, so fault tests never sleep."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
from anthropic._models import FinalRequestOptions

__all__ = ["InstantRetryAsyncAnthropic"]


class InstantRetryAsyncAnthropic(anthropic.AsyncAnthropic):
    """``AsyncAnthropic`` that never waits between retries but remembers how long it would have.

    ``retry_delays`` holds, per retry, the delay the SDK computed (``retry-after`` honoured,
    else exponential backoff with jitter). Hand it to ``AnthropicModel(..., client=...)``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_delays: list[float] = []

    def _calculate_retry_timeout(
        self,
        remaining_retries: int,
        options: FinalRequestOptions,
        response_headers: httpx2.Headers | None = None,
    ) -> float:
        # the SDK's own computation, so the test sees what a real client would have waited
        delay = super()._calculate_retry_timeout(remaining_retries, options, response_headers)
        self.retry_delays.append(delay)
        return 0.0
