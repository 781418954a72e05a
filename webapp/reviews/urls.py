from django.urls import path

from webapp.reviews import views

urlpatterns = [
    path("", views.review_detail, name="detail"),
    path("<str:action>/", views.review_action, name="action"),
]
