from django.contrib import admin
from django.urls import path

from resilience.metrics import MetricsView

from . import views
from .health import LivenessView, MonitoringView, ReadinessView, section_queries

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/dashboard/<slug:name>/", views.section_api, name="dashboard-api"),
    # Monitoring (everything, QuestDB included), readiness and liveness (this process only).
    path("ht/", MonitoringView.as_view(), name="health_check"),
    path("ht/ready/", ReadinessView.as_view(), name="health_check_ready"),
    path("ht/live/", LivenessView.as_view(), name="health_check_live"),
    path("metrics", MetricsView.as_view(fallbacks=section_queries), name="metrics"),
]

# Refusals in JSON on the API, Django's pages elsewhere; never a traceback.
handler400 = views.bad_request
handler403 = views.permission_denied
handler404 = views.page_not_found
handler500 = views.server_error
