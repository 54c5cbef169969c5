"""A plain Django form whose fields are the payload of ``demo.profile``: posted over the socket."""

from django import forms


class ProfileForm(forms.Form):
    """Rendered by Django as usual; the client sends its fields and shows the server's validation errors."""

    name = forms.CharField(max_length=50)
    email = forms.CharField(max_length=254, label="Email")
    age = forms.IntegerField()
    newsletter = forms.BooleanField(required=False, label="Send me the newsletter")
