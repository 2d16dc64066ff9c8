"""The console's typed errors: a stable code, an English message (the logs'), a kind (its HTTP status
through :mod:`node.error_kinds`). What the clerk reads on the page is the Chinese sentence
:data:`node.console.wording.ERROR_TEXT` gives the code (or its kind), with the code beside it."""

from __future__ import annotations

from node.errors import NodeError
from pki.errors import ErrorKind


class ConsoleError(NodeError):
    code = "CONSOLE_ERROR"
    kind = ErrorKind.INVALID_INPUT


class BadUser(ConsoleError):
    """``gwx user add``/``passwd`` given a login, name, role, unit or password that cannot be used."""

    code = "CONSOLE_BAD_USER"
    kind = ErrorKind.INVALID_INPUT
    subcodes = ("CONSOLE_WEAK_PASSWORD", "CONSOLE_NO_PASSWORD")


class UserExists(ConsoleError):
    code = "CONSOLE_USER_EXISTS"
    kind = ErrorKind.CONFLICT


class NoSuchUser(ConsoleError):
    code = "CONSOLE_NO_SUCH_USER"
    kind = ErrorKind.NOT_FOUND


class SignInRefused(ConsoleError):
    """Wrong login or password (one message for both: the page does not tell which logins exist)."""

    code = "CONSOLE_SIGN_IN_REFUSED"
    kind = ErrorKind.UNAUTHENTICATED


class SignInBusy(ConsoleError):
    """More sign-ins are waiting for a password check than the node lets wait: try again shortly."""

    code = "CONSOLE_BUSY"
    kind = ErrorKind.TRANSIENT


class AccountLocked(ConsoleError):
    """Too many wrong passwords in a row: the account waits until ``details['until']``."""

    code = "CONSOLE_ACCOUNT_LOCKED"
    kind = ErrorKind.FORBIDDEN


class AccountDisabled(ConsoleError):
    """The operator disabled the account (``gwx user disable``); told only to whoever knows its password."""

    code = "CONSOLE_ACCOUNT_DISABLED"
    kind = ErrorKind.FORBIDDEN


class NotSignedIn(ConsoleError):
    """No session: the page sends the browser to the sign-in page."""

    code = "CONSOLE_SIGN_IN_NEEDED"
    kind = ErrorKind.UNAUTHENTICATED
    subcodes = ("CONSOLE_SESSION_EXPIRED",)


class CsrfRefused(ConsoleError):
    """A form without this session's token, or sent from another site (Origin/Referer)."""

    code = "CONSOLE_CSRF"
    kind = ErrorKind.FORBIDDEN
    subcodes = ("CONSOLE_BAD_ORIGIN",)


class BadForm(ConsoleError):
    """A form the console cannot take as sent: too large, not a form, a field twice, a field missing."""

    code = "CONSOLE_BAD_FORM"
    kind = ErrorKind.INVALID_INPUT
    subcodes = ("CONSOLE_FORM_TOO_LARGE",)


class NoSuchPage(ConsoleError):
    code = "CONSOLE_NO_SUCH_PAGE"
    kind = ErrorKind.NOT_FOUND


class WrongRole(ConsoleError):
    """A page for another role (an operator opening a clerk's folder)."""

    code = "CONSOLE_WRONG_ROLE"
    kind = ErrorKind.FORBIDDEN


class BadFilter(ConsoleError):
    """A list's query parameter the console does not know, or with a value it cannot use."""

    code = "CONSOLE_BAD_FILTER"
    kind = ErrorKind.INVALID_INPUT


class NoSuchAttachment(ConsoleError):
    """An attachment name the document does not list (a guessed or forged one, ``../`` included)."""

    code = "CONSOLE_NO_SUCH_ATTACHMENT"
    kind = ErrorKind.NOT_FOUND


class BodyUnreadable(ConsoleError):
    """The body PDF could not be turned into page images (poppler failed or took too long)."""

    code = "CONSOLE_BODY_UNREADABLE"
    kind = ErrorKind.INTERNAL
