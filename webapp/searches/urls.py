from django.urls import path

from webapp.searches import views

urlpatterns = [
    path("", views.search_list, name="list"),
    path("searches/new/", views.search_new, name="new"),
    path("searches/compare/", views.search_compare, name="compare"),
    path("searches/<int:pk>/", views.search_detail, name="detail"),
    path("searches/<int:pk>/live/", views.search_live, name="live"),
    path("searches/<int:pk>/chart.json", views.search_chart_data, name="chart"),
    path("searches/<int:pk>/pause/", views.search_pause, name="pause"),
    path("searches/<int:pk>/resume/", views.search_resume, name="resume"),
    path("searches/<int:pk>/cancel/", views.search_cancel, name="cancel"),
    path("searches/<int:pk>/steer/", views.search_steer, name="steer"),
    path("searches/<int:pk>/enqueue/", views.search_enqueue, name="enqueue"),
    path("searches/<int:pk>/fork/", views.search_fork, name="fork"),
    path("searches/<int:pk>/supernet/cells/<str:cell_hash>.svg", views.search_supernet_cell_diagram,
         name="supernet-cell-diagram"),
    path("searches/<int:pk>/supernet/checkpoint/", views.search_supernet_checkpoint, name="supernet-checkpoint"),
    path("searches/<int:pk>/trials/<int:trial_pk>/cancel/", views.search_trial_cancel, name="trial-cancel"),
    path("searches/compare/seeds/", views.search_compare_seeds, name="compare-seeds"),
    path("searches/new/estimate/", views.search_estimate, name="estimate"),
    path("searches/live/", views.search_list_live, name="list-live"),
]
