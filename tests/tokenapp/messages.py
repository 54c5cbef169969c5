"""Messages added to the demo server in the token tests (tests/system/test_tokens.py): a signed-in user
asks for their own connection token and page topic token, and changes their password over the socket."""

from pydantic import BaseModel

from channelbus import Message, incoming, topic_token
from channelbus.server.auth import connection_token


@incoming.register
class WhoAmI(Message):
    """The signed-in user's pk."""

    name = "e2e.whoami"

    async def handle(self):
        return {"pk": self.user.pk}


@incoming.register
class MyConnectionToken(Message):
    """A connection token of the signed-in user (as ``manage.py channelbus_token`` prints one)."""

    name = "e2e.connection_token"

    async def handle(self):
        return {"token": connection_token(self.user)}


class Topics(BaseModel):
    topics: list[str]


@incoming.register
class MyTopicToken(Message):
    """A topic token for a page of the signed-in user, naming ``topics`` and the user's own topic."""

    name = "e2e.topic_token"
    schema = Topics

    async def handle(self):
        return {"token": topic_token([self.user, *self.data.topics], user=self.user)}


class NewPassword(BaseModel):
    password: str


@incoming.register
class SetPassword(Message):
    """Change the signed-in user's password (as a password-change view would)."""

    name = "e2e.set_password"
    schema = NewPassword

    def handle(self):
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.get(pk=self.user.pk)
        user.set_password(self.data.password)
        user.save()
