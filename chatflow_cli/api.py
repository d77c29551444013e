"""The ChatFlow HTTP API as the signed-in operator: bearer token, one new sign-in on a 401, pages."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

from chatflow_cli.auth import CodeSource, Token, TokenCache, sign_in
from chatflow_cli.errors import ApiError, CliError
from chatflow_cli.transport import Http

PAGE_LIMIT_MAX = 100


class ApiClient:
    def __init__(self, http: Http, api_url: str, phone: str, cache: TokenCache, codes: CodeSource) -> None:
        self.http = http
        self.api_url = api_url.rstrip("/")
        self.phone = phone
        self._cache = cache
        self._codes = codes

    def sign_in(self) -> Token:
        """A new session, cached for the next commands."""
        token = sign_in(self.http, self.api_url, self.phone, self._codes)
        self._cache.put(self.api_url, self.phone, token)
        return token

    def cached_token(self) -> Token | None:
        return self._cache.get(self.api_url, self.phone)

    def forget(self) -> None:
        self._cache.drop(self.api_url, self.phone)

    def call(self, method: str, path: str, body: Any = None, query: Mapping[str, Any] | None = None) -> Any:
        """``method path`` with the operator's token; a rejected cached token means one new sign-in."""
        url = self.api_url + path
        wanted = {k: v for k, v in (query or {}).items() if v is not None}
        if wanted:
            url += "?" + urlencode(wanted)
        cached = self.cached_token()
        token = cached or self.sign_in()
        try:
            return self._send(method, url, body, token)
        except ApiError as exc:
            if exc.status != 401 or cached is None:
                raise
        return self._send(method, url, body, self.sign_in())

    def call_object(
        self, method: str, path: str, body: Any = None, query: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """``call`` for routes that answer a JSON object: anything else is reported, not a traceback."""
        answer = self.call(method, path, body, query)
        if not isinstance(answer, dict):
            raise CliError(
                f"{method} {path} answered {type(answer).__name__}, not a JSON object: is the API current?"
            )
        return answer

    def _send(self, method: str, url: str, body: Any, token: Token) -> Any:
        headers = {"Authorization": f"Bearer {token.token}"}
        return self.http.api(method, url, json_body=body, headers=headers)

    def pages(
        self, path: str, query: Mapping[str, Any] | None = None, *, follow: bool = True
    ) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """Each page's items and its ``nextCursor``; only the first page unless ``follow``."""
        params = dict(query or {})
        while True:
            page = self.call_object("GET", path, query=params)
            items = [item for item in page.get("items") or [] if isinstance(item, dict)]
            cursor = page.get("nextCursor") or None
            yield items, cursor
            if not (follow and cursor):
                return
            params["cursor"] = cursor
