"""Running a script on a terminal, as a person answering its question would."""

from __future__ import annotations

import os
import pty
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def answering(answer: str, run: Callable[[int], T]) -> T:
    """Call run(terminal) with a pseudo-terminal as its stdin, `answer` already typed into it
    (the script sees a terminal, so it asks instead of requiring --yes); what run returns."""
    controller, terminal = pty.openpty()
    try:
        os.write(controller, answer.encode())
        return run(terminal)
    finally:
        os.close(controller)
        os.close(terminal)
