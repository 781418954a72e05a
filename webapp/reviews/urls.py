from django.urls import path

from webapp.reviews import views

#: Under /cells/<hash>/review/ (namespace `reviews`).
urlpatterns = [
    path("", views.review_detail, name="detail"),
    path("<str:action>/", views.review_action, name="action"),
]

#: Under /reviews/ (namespace `review_queue`): the queue and the side-by-side.
queue_urlpatterns = [
    path("", views.review_queue, name="list"),
    path("compare/", views.review_compare, name="compare"),
    path("activity/", views.review_activity, name="activity"),
]
