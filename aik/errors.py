"""Errors the kit reports to users: each carries a one-line, actionable message."""


class AikError(Exception):
    """Base class of errors shown to the user as a one-line reason (the CLI exits non-zero)."""


class ParameterNotFound(AikError):
    """A parameter is missing from the store; the message says which backend and how to create it."""

    def __init__(
        self, name: str, backend: str, hint: str = "run `aik configure` first", location: str = ""
    ) -> None:
        self.name = name
        self.backend = backend
        where = f" at {location}" if location else ""
        super().__init__(f"parameter {name} is not set in the {backend} parameter store{where} ({hint})")


class ArtifactNotFound(AikError):
    """An artifact URI points at nothing."""

    def __init__(self, uri: str, what: str = "artifact") -> None:
        self.uri = uri
        super().__init__(f"{what} not found: {uri}")


class ArtifactError(AikError):
    """An artifact exists but cannot be read or is corrupt; the message names its URI."""

    def __init__(self, uri: str, reason: str) -> None:
        self.uri = uri
        self.reason = reason
        super().__init__(f"cannot use {uri}: {reason}")
