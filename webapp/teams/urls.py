from django.urls import path

from webapp.teams import views

urlpatterns = [
    path("", views.team_list, name="list"),
    path("join/<str:token>/", views.team_join, name="join"),
    path("<int:team_id>/", views.team_detail, name="detail"),
    path("<int:team_id>/<str:action>/", views.team_action, name="action"),
]
