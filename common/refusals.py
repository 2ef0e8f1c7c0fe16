"""Refusals: what a caller did wrong or may not do, answered as a 4xx JSON error."""


class Refusal(Exception):
    """A request a daemon will not carry out; nothing was recorded."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 extra: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.extra = extra or {}

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.message}
        if self.field is not None:
            body["field"] = self.field
        body.update(self.extra)
        return body


def bad_request(message: str, field: str | None = None) -> Refusal:
    return Refusal(400, message, field)


def forbidden(message: str) -> Refusal:
    return Refusal(403, message)


def not_found(message: str, field: str | None = None) -> Refusal:
    return Refusal(404, message, field)
