from django.urls import path

from webapp.analysis import views

urlpatterns = [
    path("", views.analysis_page, name="page"),
    *(path(f"{name}.json", view, name=name) for name, view in views.figure_views.items()),
    path("trials.csv", views.trials_csv, name="trials-csv"),
    path("trials.parquet", views.trials_parquet, name="trials-parquet"),
]
