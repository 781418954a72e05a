from django.urls import path

from webapp.transfers import views

urlpatterns = [
    path("", views.transfer_list, name="list"),
    path("new/", views.transfer_new, name="new"),
    path("<int:pk>/", views.transfer_detail, name="detail"),
    path("<int:pk>/live/", views.transfer_live, name="live"),
    path("<int:pk>/pause/", views.transfer_pause, name="pause"),
    path("<int:pk>/resume/", views.transfer_resume, name="resume"),
    path("<int:pk>/cancel/", views.transfer_cancel, name="cancel"),
    path("<int:pk>/files/<str:kind>", views.transfer_file, name="file"),
]
