"""The Django form of the demo's profile card: the schema of ``demo.profile`` (``docs/schema.md``).

Django renders it as usual; the page sends its fields over the socket, the same form validates them on
the server, and its errors come back next to their fields.
"""

from django import forms


class ProfileForm(forms.Form):
    """A name, an email address, an age and a newsletter choice."""

    name = forms.CharField(min_length=2, max_length=50)
    email = forms.EmailField(max_length=254, label="Email")
    age = forms.IntegerField(min_value=13, max_value=130)
    newsletter = forms.BooleanField(required=False, label="Send me the newsletter")
