"""Form API: with an app key (``/v1/form/human_input/{token}``), with the token alone (``/api/form/...``,
rate limited per client)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import responses
from app.human_input import services
from app.human_input.forms import deadline
from app.schemas import NO_NUL, unix
from app.tenancy.services import AppKey
from db.models import HumanInputForm

Token = Annotated[str, Parameter(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")]


class FormOut(msgspec.Struct):
    form_content: str
    inputs: list[dict[str, Any]]
    resolved_default_values: dict[str, Any]
    user_actions: list[dict[str, Any]]
    expiration_time: int | None


class FormSubmission(msgspec.Struct, kw_only=True):
    inputs: dict[str, Any] = msgspec.field(default_factory=dict)
    action: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL)]
    user: Annotated[str, msgspec.Meta(max_length=255, pattern=NO_NUL)] | None = None


class Submitted(msgspec.Struct):
    pass


def form_out(form: HumanInputForm) -> FormOut:
    return FormOut(
        form_content=form.form_content,
        inputs=form.inputs,
        resolved_default_values=form.resolved_default_values,
        user_actions=form.user_actions,
        expiration_time=unix(deadline(form)),
    )


async def _submit(
    db_session: AsyncSession, token: str, data: FormSubmission, app_id: uuid.UUID | None
) -> Submitted:
    await services.submit(db_session, token, data.inputs, data.action, data.user, app_id)
    return Submitted()


FORM_ERRORS = responses(400, 404, 412, 429)


class AppFormController(Controller):
    """The form API for Service API clients: the form must belong to the key's app."""

    path = "/v1"
    tags = ["service api: human input"]

    @get("/form/human_input/{form_token:str}", responses=responses(401, 404, 412))
    async def get_form(self, db_session: AsyncSession, key: AppKey, form_token: Token) -> FormOut:
        return form_out(await services.get_form(db_session, form_token, key.app_id))

    @post("/form/human_input/{form_token:str}", status_code=200, responses=responses(401, 404, 412))
    async def submit_form(
        self, db_session: AsyncSession, key: AppKey, form_token: Token, data: FormSubmission
    ) -> Submitted:
        """Submit the form: exactly one submission wins; the run resumes along the chosen action."""
        return await _submit(db_session, form_token, data, key.app_id)


class PublicFormController(Controller):
    """The form API for whoever holds the link: the token is the only credential. Rate limited per client."""

    path = "/api/form/human_input"
    tags = ["public: human input"]

    @get("/{form_token:str}", responses=responses(404, 412, 429))
    async def get_public_form(self, db_session: AsyncSession, form_token: Token) -> FormOut:
        return form_out(await services.get_form(db_session, form_token))

    @post("/{form_token:str}", status_code=200, responses=FORM_ERRORS)
    async def submit_public_form(
        self, db_session: AsyncSession, form_token: Token, data: FormSubmission
    ) -> Submitted:
        return await _submit(db_session, form_token, data, None)
