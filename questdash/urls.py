from django.contrib import admin
from django.urls import path

from resilience.metrics import MetricsView

from . import views
from .health import LivenessView, ReadinessView, section_queries

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/dashboard/<slug:name>/", views.section_api, name="dashboard-api"),
    # Readiness (everything, QuestDB included) and liveness (this process only).
    path("ht/", ReadinessView.as_view(), name="health_check"),
    path("ht/live/", LivenessView.as_view(), name="health_check_live"),
    path("metrics", MetricsView.as_view(fallbacks=section_queries), name="metrics"),
]
