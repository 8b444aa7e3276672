"""The app's URLs in a project without django.contrib.admin."""

from .urls import urlpatterns as _all

urlpatterns = [pattern for pattern in _all if not str(pattern.pattern).startswith("admin/")]
