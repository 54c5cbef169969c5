"""The demo's URLs and the admin, for the admin page tests (``@pytest.mark.urls("tests.admin_urls")``)."""

from demo_site.urls import urlpatterns as demo_urlpatterns
from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls), *demo_urlpatterns]
