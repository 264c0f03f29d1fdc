"""Refuse, before any view runs, a URL that no page can answer."""

from urllib.parse import unquote

from django.http import HttpResponseBadRequest


class RefuseNulBytesMiddleware:
    """Answer 400 to a request whose path or query string holds a NUL byte.

    PostgreSQL refuses NUL in any text value, so an admin filter such as `?status=%00`
    would otherwise end in a database error, a 500 and an email to ADMINS. No real URL of
    this project contains one.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query_string = unquote(request.META.get("QUERY_STRING", ""))
        if "\x00" in request.path_info or "\x00" in query_string:
            return HttpResponseBadRequest("NUL bytes are not allowed in a URL.")
        return self.get_response(request)
