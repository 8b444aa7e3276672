"""The project's URLs plus views that let a QuestDB failure escape, for the middleware."""

from django.http import HttpResponse, JsonResponse
from django.urls import path

from questdash.models import Price
from questdash.urls import urlpatterns as project_urlpatterns


def escape_html(request):
    return HttpResponse(f"{Price.objects.count()} prices")


def escape_json(request):
    return JsonResponse({"prices": Price.objects.count()})


urlpatterns = [
    *project_urlpatterns,
    path("test/escape/", escape_html),
    path("api/test/escape/", escape_json),
]
