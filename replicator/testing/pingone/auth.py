"""The token endpoint ``POST /{env}/as/token`` (OAuth 2.0 client_credentials, a worker app's id and
secret by Client Secret Basic or Client Secret Post) and the bearer check of the Platform and SCIM
APIs: a token is good for ``expires_in`` (3600) seconds and only for the environment that issued it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from urllib.parse import unquote

from aiohttp import web

from replicator.testing.pingone.context import environment_of
from replicator.testing.pingone.environment import Environment
from replicator.testing.pingone.errors import access_failed
from replicator.testing.pingone.switches import TOKEN_LIFETIME


def add_token_route(app: web.Application) -> None:
    app.router.add_post("/{env}/as/token", token)


def oauth_error(status: int, error: str, description: str, basic: bool = False) -> web.Response:
    """An RFC 6749 section 5.2 error answer."""
    headers = {"WWW-Authenticate": 'Basic realm="PingOne"'} if basic else None
    return web.json_response({"error": error, "error_description": description}, status=status, headers=headers)


def client_of(authorization: str, form: dict[str, str]) -> tuple[str, str] | None:
    """(client id, secret) from a Basic header (form-urlencoded parts, RFC 6749 2.3.1) or the form."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, colon, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return (unquote(client_id), unquote(secret)) if colon else None
    if "client_id" in form and "client_secret" in form:
        return form["client_id"], form["client_secret"]
    return None


async def token(request: web.Request) -> web.Response:
    environment = environment_of(request)
    form = {key: str(value) for key, value in (await request.post()).items()}
    client = client_of(request.headers.get("Authorization", ""), form)
    if client is None:
        return oauth_error(401, "invalid_client", "client authentication is required", basic=True)
    client_id, secret = client
    if client_id != environment.client_id or not hmac.compare_digest(secret, environment.client_secret):
        return oauth_error(401, "invalid_client", "the client id or secret is not valid", basic=True)
    if form.get("grant_type") != "client_credentials":
        return oauth_error(400, "unsupported_grant_type", "only grant_type=client_credentials is supported")
    return web.json_response({"access_token": environment.issue_token(), "token_type": "Bearer",
                              "expires_in": TOKEN_LIFETIME, "scope": ""})


def check_bearer(request: web.Request, environment: Environment) -> None:
    """401 ACCESS_FAILED unless the request carries a live token of this environment."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise access_failed("The request could not be completed. A bearer token is required.")
    if not environment.accepts(credentials.strip()):
        raise access_failed("The request could not be completed. You do not have access to this resource.")
