"""URLs of the demo."""

from demoapp.views import index
from django.urls import path

urlpatterns = [path("", index, name="index")]
