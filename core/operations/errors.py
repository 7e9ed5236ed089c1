"""What the operation services raise: a refusal listing each problem by the input it is about."""

from __future__ import annotations


class OperationNotFound(LookupError):
    """No pass operation has this id."""


class OperationInvalid(ValueError):
    """A step was refused; ``problems`` lists (input name, what is wrong, in words)."""

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__("; ".join(f"{where}: {what}" if where else what for where, what in problems))
        self.problems = problems
