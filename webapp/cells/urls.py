from django.urls import path

from webapp.cells import views

urlpatterns = [
    path("", views.cell_list, name="list"),
]
