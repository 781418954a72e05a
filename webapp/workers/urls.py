from django.urls import path

from webapp.workers import views

urlpatterns = [
    path("", views.worker_list_page, name="list"),
    path("trial-log/<int:pk>/", views.trial_log, name="trial-log"),
]
