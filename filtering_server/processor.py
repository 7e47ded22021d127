"""Dispatch one decoded Thrift message to a handler object by method name, with one error-reply path.

As thriftpy2's `TProcessor(service, handler)`: the transport (`server.py`) only moves bytes and hands
each whole message here; the handler (`handler.py`) only computes results. Every way a message can
fail — not a call, an unknown method, undecodable arguments, a `BadRequest` from the handler, any other
exception inside it — leaves through `_ErrorReply`: a TApplicationException reply (none for a oneway
call), one error counted, and the connection stays open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any

from thriftpy2.thrift import TApplicationException, TMessageType

from filtering_server.log_limit import LogLimiter
from filtering_server.model import BadRequest

log = logging.getLogger(__name__)


class _ErrorReply(Exception):
    """A message that gets a TApplicationException of `kind` instead of a result."""

    def __init__(self, kind: int, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class Processor:
    """Read a call from `iprot`, run `handler.<method>(*args)`, write its result or an error to `oprot`."""

    def __init__(
        self,
        service: ModuleType,
        handler: object,
        on_error: Callable[[], None] | None = None,
        limited_log: LogLimiter | None = None,
    ) -> None:
        self.service = service
        self.handler = handler
        self.on_error = on_error
        #: unexpected failures are logged through it, so a request that always fails cannot flood the log
        self.limited_log = limited_log
        #: method -> (its args struct, its result struct, the handler's method, argument names in IDL order)
        self._methods: dict[str, tuple[Any, Any, Callable[..., Any], list[str]]] = {}
        for name in service.thrift_services:
            args = getattr(service, f"{name}_args")
            names = [spec[1] for spec in args.thrift_spec.values()]
            self._methods[name] = (args, getattr(service, f"{name}_result"), getattr(handler, name), names)

    def process(self, iprot: Any, oprot: Any, check: Callable[[str], None] | None = None) -> Any:
        """Handle one message; return the handler's result, or None when an error reply was written.

        `check(method)`, when given, runs before the arguments are decoded; a `BadRequest` it raises is
        an error reply like any other (the transport refuses oversized lists this way).
        """
        try:
            name, mtype, seqid = iprot.read_message_begin()
        except Exception:  # the transport framed the message, so its header is expected to decode
            log.exception("undecodable message header")
            return None
        try:
            result, result_struct = self._call(iprot, name, mtype, check)
        except _ErrorReply as err:
            if mtype != TMessageType.ONEWAY:
                send_exception(oprot, name, seqid, err.kind, err.message)
            if self.on_error is not None:
                self.on_error()
            return None
        if mtype != TMessageType.ONEWAY:
            oprot.write_message_begin(name, TMessageType.REPLY, seqid)
            oprot.write_struct(result_struct(success=result))
            oprot.write_message_end()
        return result

    def _call(
        self, iprot: Any, name: str, mtype: int, check: Callable[[str], None] | None = None
    ) -> tuple[Any, Any]:
        """(the handler's result, the method's result struct), or `_ErrorReply`."""
        if mtype not in (TMessageType.CALL, TMessageType.ONEWAY):
            raise _ErrorReply(TApplicationException.INVALID_MESSAGE_TYPE, "expected a call")
        method = self._methods.get(name)
        if method is None:
            raise _ErrorReply(TApplicationException.UNKNOWN_METHOD, f"unknown method {name!r}")
        args_struct, result_struct, handle, arguments = method
        if check is not None:
            try:
                check(name)
            except BadRequest as exc:
                raise _ErrorReply(TApplicationException.UNKNOWN, f"invalid request: {exc}") from exc
        args = args_struct()
        try:
            iprot.read_struct(args)
        except Exception as exc:
            raise _ErrorReply(TApplicationException.PROTOCOL_ERROR, f"cannot decode {name}: {exc}") from exc
        try:
            return handle(*[getattr(args, a) for a in arguments]), result_struct
        except BadRequest as exc:
            raise _ErrorReply(TApplicationException.UNKNOWN, f"invalid request: {exc}") from exc
        except Exception as exc:
            if self.limited_log is not None:
                self.limited_log.log("internal-error", logging.ERROR, "%s failed", name, exc_info=True)
            else:
                log.exception("%s failed", name)
            message = f"internal error: {type(exc).__name__}: {exc}"
            raise _ErrorReply(TApplicationException.INTERNAL_ERROR, message) from exc


def send_exception(oprot: Any, name: str, seqid: int, kind: int, message: str) -> None:
    """Write a TApplicationException reply (also used by the transport for unframeable messages)."""
    oprot.write_message_begin(name, TMessageType.EXCEPTION, seqid)
    oprot.write_struct(TApplicationException(kind, message))
    oprot.write_message_end()
