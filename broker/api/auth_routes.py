"""HTTP routes for staff login, the caller's identity and user management."""

from __future__ import annotations

from aiohttp import web

from broker.api import models
from broker.api.principals import client_addr, staff
from broker.api.routing import ApiRoute, json_response, read_model
from broker.appkeys import SERVICES_KEY
from broker.auth.roles import Action
from broker.auth.service import StaffPrincipal
from broker.store.records import iso
from broker.types import Role


def _user_json(principal: StaffPrincipal) -> dict[str, str | None]:
    return {
        "name": principal.name,
        "display_name": principal.display_name,
        "role": principal.role.value,
        "level": principal.level,
    }


async def login(request: web.Request) -> web.Response:
    body = await read_model(request, models.LoginIn)
    token, expires, principal = await request.app[SERVICES_KEY].auth.login(
        body.username, body.password, client_addr(request)
    )
    return json_response(
        {
            "token": token,
            "token_type": "Bearer",
            "expires_at": iso(expires),
            "user": _user_json(principal),
        }
    )


async def renew_token(request: web.Request) -> web.Response:
    principal = await staff(request)
    token, expires = await request.app[SERVICES_KEY].auth.renew(principal, client_addr(request))
    return json_response({"token": token, "token_type": "Bearer", "expires_at": iso(expires)})


async def me(request: web.Request) -> web.Response:
    principal = await staff(request)
    table = request.app[SERVICES_KEY].auth.policy.table
    permissions = sorted(action.value for action, roles in table.items() if principal.role in roles)
    return json_response({**_user_json(principal), "permissions": permissions})


async def list_users(request: web.Request) -> web.Response:
    await staff(request, Action.MANAGE_USERS)
    users = await request.app[SERVICES_KEY].auth.list_users()
    return json_response({"users": [user.to_json() for user in users]})


async def create_user(request: web.Request) -> web.Response:
    principal = await staff(request, Action.MANAGE_USERS)
    body = await read_model(request, models.UserIn)
    user = await request.app[SERVICES_KEY].auth.add_user(
        body.name,
        body.display_name,
        Role(body.role),
        body.password,
        principal.actor(client_addr(request)),
    )
    return json_response(user.to_json(), status=201)


async def disable_user(request: web.Request) -> web.Response:
    principal = await staff(request, Action.MANAGE_USERS)
    auth = request.app[SERVICES_KEY].auth
    name = request.match_info["name"]
    await auth.set_disabled(name, True, principal.actor(client_addr(request)))
    return json_response((await auth.get_user(name)).to_json())


ROUTES = [
    ApiRoute(
        "POST",
        "/api/v1/login",
        login,
        "Log in with user name and password",
        auth="none",
        body=models.LoginIn,
        response=models.LoginOut,
        errors=(401, 429, 503),
        tags=("auth",),
    ),
    ApiRoute(
        "POST",
        "/api/v1/token",
        renew_token,
        "Renew the caller's staff token before it expires (live viewer sockets take the new "
        "one with a renew message)",
        response=models.TokenOut,
        errors=(401,),
        tags=("auth",),
    ),
    ApiRoute(
        "GET",
        "/api/v1/me",
        me,
        "The logged-in user and what their role allows",
        errors=(401,),
        tags=("auth",),
    ),
    ApiRoute(
        "GET", "/api/v1/users", list_users, "List staff users", errors=(401, 403), tags=("users",)
    ),
    ApiRoute(
        "POST",
        "/api/v1/users",
        create_user,
        "Create a staff user",
        body=models.UserIn,
        status=201,
        errors=(401, 403, 409, 503),
        tags=("users",),
    ),
    ApiRoute(
        "POST",
        "/api/v1/users/{name}/disable",
        disable_user,
        "Disable a staff user (their tokens stop working and their live connections close at once)",
        errors=(401, 403, 404),
        tags=("users",),
    ),
]
