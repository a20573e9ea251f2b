"""Public tracking endpoints, outside `/v1` and its authentication: every URL carries a
signed token (core/messaging/tracking.py), which is the only credential they accept."""

from __future__ import annotations

import base64
import html
from urllib.parse import parse_qsl

from litestar import Request, Response, get, post
from litestar.enums import MediaType
from litestar.params import FromPath
from litestar.response import Redirect

from core.errors import NotFound
from core.messaging.feedback import Feedback

_PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_STORE = {"Cache-Control": "no-store, max-age=0"}


def _feedback(request: Request) -> Feedback:
    state = request.app.state
    return Feedback(db=state.db, settings=state.settings, plugins=state.plugins)


def _page(title: str, body: str) -> Response[str]:
    return Response(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><meta name='viewport' content='width=device-width'></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>",
        media_type=MediaType.HTML, headers=_NO_STORE)


@get("/t/o/{token:str}", include_in_schema=False)
async def open_pixel(request: Request, token: FromPath[str]) -> Response[bytes]:
    await _feedback(request).opened(token.removesuffix(".gif"))
    return Response(_PIXEL, media_type="image/gif", headers=_NO_STORE)


@get("/t/c/{token:str}", include_in_schema=False)
async def click(request: Request, token: FromPath[str]) -> Redirect:
    url = await _feedback(request).clicked(token)
    return Redirect(url, status_code=302, headers=_NO_STORE)


@get("/t/u/{token:str}", include_in_schema=False)
async def unsubscribe_page(request: Request, token: FromPath[str]) -> Response[str]:
    # A GET never unsubscribes: mail scanners fetch every link of a message.
    _feedback(request).check_unsubscribe(token)
    action = html.escape(request.url.path, quote=True)
    return _page("Unsubscribe", f"<form method='post' action='{action}'>"
                 "<button type='submit'>Unsubscribe me</button></form>")


@post("/t/u/{token:str}", include_in_schema=False, status_code=200)
async def unsubscribe(request: Request, token: FromPath[str]) -> Response[str]:
    """Both the confirmation form and RFC 8058 one-click (`List-Unsubscribe=One-Click`)."""
    if not await _feedback(request).unsubscribed(token):
        raise NotFound("unknown link")
    return _page("You are unsubscribed", "<p>You will not receive these messages any more.</p>")


@post("/t/s/{token:str}", include_in_schema=False, status_code=200)
async def provider_status(request: Request, token: FromPath[str]) -> dict[str, int]:
    content_type = request.headers.get("content-type", "")
    body = await request.body()
    form = None
    if content_type.startswith("application/x-www-form-urlencoded"):
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    updated = await _feedback(request).provider_status(token, content_type, body, form)
    return {"updated": updated}


@get("/t/s/{token:str}", include_in_schema=False, media_type=MediaType.TEXT)
async def provider_verification(request: Request, token: FromPath[str]) -> str:
    """WhatsApp webhook set-up: Meta checks the callback URL by asking it to echo
    `hub.challenge`. The signed URL is the credential, so any verify token is accepted."""
    _feedback(request).signer.verify(token, "s")
    params = request.query_params
    if params.get("hub.mode") != "subscribe" or not params.get("hub.challenge"):
        raise NotFound("nothing to verify")
    return str(params.get("hub.challenge"))


tracking_routes = [open_pixel, click, unsubscribe_page, unsubscribe, provider_status,
                   provider_verification]
