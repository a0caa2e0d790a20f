"""The accounts API's request and answer models."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from engine.schema import Says, Strict
from webapp.accounts.policy import ROLES
from webapp.accounts.services import MAX_TOKEN_DAYS, MIN_PASSWORD
from webapp.contract import Answer

Role = Literal[ROLES]


class UserOut(Answer):
    id: int
    username: str
    role: Role
    created_at: datetime | None
    last_sign_in_at: datetime | None


class UserList(Answer):
    users: list[UserOut]
    next_before: int | None = Field(description="Pass as `before` for the next page; null on the last page.")


class Me(Answer):
    user: UserOut | None = Field(description="The signed-in person; null when sign-in is off or for anyone.")
    role: Role | None = Field(description="The role the caller acts with.")
    auth_required: bool


class TokenOut(Answer):
    id: int
    name: str
    prefix: str = Field(description="The secret's first characters, to recognise it.")
    created_at: datetime | None
    last_used_at: datetime | None
    expires_at: datetime | None
    expired: bool


class NewToken(TokenOut):
    token: str = Field(description="The secret, shown this once; only its hash is kept.")


class TokenList(Answer):
    tokens: list[TokenOut]
    next_before: int | None


class Revoked(Answer):
    revoked: int


class Deleted(Answer):
    deleted: int


class SignedOut(Answer):
    signed_out: int = Field(description="How many sessions ended.")


Username = Annotated[str, Says("Give a user name.", always=True, code="missing_field")]
Password = Annotated[str, Says("Passwords need at least %(min)s characters.", {"min": MIN_PASSWORD}, always=True)]
RoleField = Annotated[Role, Says("The role must be one of %(options)s.", {"options": ", ".join(ROLES)})]


class NewUser(Strict):
    username: Username
    password: Password
    role: RoleField = "member"


class UserChange(Strict):
    role: RoleField | None = None
    password: Password | None = None


class PasswordChange(Strict):
    current_password: Annotated[str, Says("The current password is wrong.", always=True)]
    password: Password


class TokenRequest(Strict):
    name: Annotated[str, Says("Name the token, e.g. after the script that will use it.", always=True,
                              code="missing_field")]
    expires_in_days: Annotated[int | None, Field(ge=1, le=MAX_TOKEN_DAYS), Says(
        "A token lasts a whole number of days from 1 to %(max)s, or null to last until it is revoked.",
        {"max": MAX_TOKEN_DAYS}, always=True)] = None
