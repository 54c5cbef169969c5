"""The demo's data: chat messages and the cards of a shared board."""

from django.conf import settings
from django.db import models


class ChatMessage(models.Model):
    """One message in a chat room."""

    room = models.SlugField(max_length=32, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    text = models.CharField(max_length=2000)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def as_payload(self) -> dict:
        """The ``chat.message`` payload of this message."""
        return {
            "room": self.room,
            "id": self.pk,
            "user": self.user.get_username(),
            "text": self.text,
            "at": self.at,
        }


class Card(models.Model):
    """A card on the shared live board (model binding)."""

    title = models.CharField(max_length=200)
    done = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)

    class Meta:
        ordering = ["id"]
