"""Every page needs a login, except the login page; the API answers 401/403 itself."""

from django.contrib.auth.middleware import LoginRequiredMiddleware


class LoginRequiredExceptApiMiddleware(LoginRequiredMiddleware):
    """Pages redirect anonymous users to the login page. API requests pass through so DRF can
    authenticate tokens and answer with a status code instead of a redirect; its default
    permission is IsAuthenticated, so no endpoint is open."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
