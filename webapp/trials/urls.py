from django.urls import path

from webapp.trials import views

urlpatterns = [
    path("<int:pk>/", views.trial_detail, name="detail"),
    path("<int:pk>/live/", views.trial_live, name="live"),
]
