"""What a test or a benchmark starts and must stop again, as a context
manager: `with thing:` starts it and stops it whatever happens inside."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Started:
    """Subclasses give `start()` and `stop()`."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
