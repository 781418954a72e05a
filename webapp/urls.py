from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from webapp.reviews import urls as review_urls


@login_not_required
def favicon(request):
    """Browsers ask for /favicon.ico whatever the page says: answer without a login, and look
    the static URL up per request (production's manifest exists only after collectstatic)."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's init script from this URL (?script=) instead of inline, so
    # the page works under the Content-Security-Policy's script-src 'self'.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/", include("webapp.api_urls")),
    path("trials/", include(("webapp.trials.urls", "trials"))),
    path("cells/<str:cell_hash>/review/", include(("webapp.reviews.urls", "reviews"))),
    path("reviews/", include((review_urls.queue_urlpatterns, "review_queue"))),
    path("cells/", include(("webapp.cells.urls", "cells"))),
    path("transfers/", include(("webapp.transfers.urls", "transfers"))),
    path("teams/", include(("webapp.teams.urls", "teams"))),
    path("workers/", include(("webapp.workers.urls", "workers"))),
    path("searches/<int:pk>/analysis/", include(("webapp.analysis.urls", "analysis"))),
    path("", include(("webapp.searches.urls", "searches"))),
]

# A URL under /api/ that no route matches answers JSON, as the API's own 404s do.
handler404 = "webapp.api.errors.not_found"
