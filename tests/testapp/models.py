"""A model for model-keyed topics in tests."""

from django.conf import settings
from django.db import models


class Note(models.Model):
    """A note only its owner (or holders of testapp.view_note) may follow."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    text = models.CharField(max_length=100)

    class Meta:
        app_label = "testapp"
