"""Built-in outgoing messages that act on the page: ``dom.text``, ``dom.html``, ``dom.notice``, ...

Build one with the helper named after the action and publish it like any message::

    from channelbus import dom, publish

    publish(dom.text("#count", 5), to=request.user)           # textContent = "5"
    publish(dom.add_class("#row-3", "done"), to="chat.room:lobby")
    publish(dom.notice("Saved", level="success"), to=request.user)

Each helper returns a validated :class:`~channelbus.messages.Message` (a bad
selector or attribute raises pydantic's ``ValidationError`` in the code that
built it). Numbers given as text or values are converted to strings.

Everything here sets text, attributes, classes or values and is safe with
user-supplied strings, except the ``*html`` actions (``dom.html``,
``dom.append_html``, ``dom.prepend_html``): they insert markup and must only
carry **trusted HTML produced by the server** (e.g. ``render_to_string`` with
autoescaping). As a safety net, ``dom.attr`` refuses event-handler attributes
(``on*``), ``style``, ``srcdoc`` and what an ``<object>`` loads (:data:`REFUSED_ATTRIBUTES`); URL
attributes (``href``, ``src``, ``action``, ``formaction``, ``xlink:href``, ``poster``, ``srcset``...,
:data:`URL_ATTRIBUTES`) take only ``http:``, ``https:`` and ``mailto:`` URLs and relative ones
(:data:`URL_SCHEMES`), never ``javascript:``, ``vbscript:`` or ``data:``, and never on ``base``,
``script``, ``object`` or ``embed`` elements that the selector names (:data:`URL_REFUSED_ELEMENTS`).
The browser client checks the same again, on the elements themselves.

Importing this module registers the classes in :data:`~channelbus.registry.outgoing`; nothing else.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from .message import Message
from .registry import outgoing

__all__ = [
    "MAX_SELECTOR_LENGTH",
    "REFUSED_ATTRIBUTES",
    "URL_ATTRIBUTES",
    "URL_REFUSED_ELEMENTS",
    "URL_SCHEMES",
    "AttrSchema",
    "ClassSchema",
    "DomAddClass",
    "DomAppend",
    "DomAppendHtml",
    "DomAttr",
    "DomFocus",
    "DomHtml",
    "DomNotice",
    "DomPrepend",
    "DomPrependHtml",
    "DomRemove",
    "DomRemoveClass",
    "DomScroll",
    "DomText",
    "DomValue",
    "HtmlSchema",
    "NoticeLevel",
    "NoticeSchema",
    "SelectorSchema",
    "TextSchema",
    "ValueSchema",
    "add_class",
    "append",
    "append_html",
    "attr",
    "focus",
    "html",
    "notice",
    "prepend",
    "prepend_html",
    "remove",
    "remove_class",
    "scroll",
    "text",
    "unsafe_attribute",
    "url_scheme",
    "value",
]

#: The longest CSS selector accepted, in characters.
MAX_SELECTOR_LENGTH = 500

#: Attributes whose value is a URL, or a list of URLs (``srcset``, ``imagesrcset``, ``ping``): each URL
#: must be relative or use one of :data:`URL_SCHEMES` (names compared in lower case).
URL_ATTRIBUTES = frozenset(
    {
        "href",
        "src",
        "action",
        "formaction",
        "xlink:href",
        "poster",
        "cite",
        "background",
        "longdesc",
        "manifest",
        "icon",
        "lowsrc",
        "dynsrc",
        "usemap",
        "srcset",
        "imagesrcset",
        "ping",
    }
)

#: The schemes a URL attribute may use. A URL without a scheme (``/next``, ``page.html``, ``#top``,
#: ``//host/path``) is relative and always allowed.
URL_SCHEMES = frozenset({"http", "https", "mailto"})

#: Attributes never set, besides event handlers (``on*``): ``style`` (CSS can overlay the page and send
#: what it reads), ``srcdoc`` (a whole document), what an ``<object>`` loads (``data``, ``codebase``,
#: ``classid``, ``archive``) and ``attributename`` (an SVG animation could animate ``href`` to any URL).
REFUSED_ATTRIBUTES = frozenset({"style", "srcdoc", "data", "codebase", "classid", "archive", "attributename"})

#: Elements whose URL attributes are never set: ``base`` (it moves every relative URL of the page) and
#: those that load code (``script``, ``object``, ``embed``). The server sees only the selector, so it
#: refuses selectors that name them as a type; the client checks each element it matched.
URL_REFUSED_ELEMENTS = frozenset({"base", "script", "object", "embed"})

_ATTRIBUTE_NAME = re.compile(r"[a-zA-Z_:][-a-zA-Z0-9_:.]*")
_LIST_OF_URLS = frozenset({"srcset", "imagesrcset", "ping"})
# What a browser's URL parser drops before reading the scheme: ASCII tab and newlines anywhere,
# C0 controls and spaces at the start.
_URL_TAB_OR_NEWLINE = re.compile(r"[\t\n\r]")
_URL_LEADING = re.compile(r"^[\x00-\x20]+")
_URL_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")
# A type selector of a refused element: at the start, or after whitespace, a combinator, a comma, a
# parenthesis or a namespace bar, and not followed by more of a name.
_REFUSED_ELEMENT_SELECTOR = re.compile(
    r"(?:^|[\s,>+~(|])(" + "|".join(sorted(URL_REFUSED_ELEMENTS)) + r")(?![-\w\\])", re.IGNORECASE
)


def url_scheme(url: str) -> str | None:
    """The scheme of ``url`` in lower case, as a browser reads it; None for a relative URL.

    Tabs and newlines anywhere, and control characters and spaces at the start, do not count:
    ``" \tJava\nScript:x()"`` has the scheme ``javascript``.
    """
    match = _URL_SCHEME.match(_URL_LEADING.sub("", _URL_TAB_OR_NEWLINE.sub("", url)))
    return match.group(1).lower() if match else None


def _refused_url(name: str, value: str) -> str | None:
    urls = re.split(r"[\s,]+", value) if name in _LIST_OF_URLS else [value]
    for url in urls:
        scheme = url_scheme(url)
        if scheme is not None and scheme not in URL_SCHEMES:
            allowed = ", ".join(f"{s}:" for s in sorted(URL_SCHEMES))
            return f"a {scheme}: URL cannot be set as {name} (allowed: {allowed} and relative URLs)"
    return None


def unsafe_attribute(name: str, value: str | None = None, selector: str = "") -> str | None:
    """Why ``dom.attr`` refuses to set attribute ``name`` to ``value`` on ``selector``; None if it may.

    Removing (``value`` None) is refused only for the names that are never set. The browser client's
    ``unsafeAttribute(name, value, tagName)`` gives the same answers for the same name and value.
    """
    lowered = name.lower()
    if lowered.startswith("on"):
        return "event-handler attributes (on*) cannot be set"
    if lowered in REFUSED_ATTRIBUTES:
        return f"the {lowered} attribute cannot be set"
    if value is None or lowered not in URL_ATTRIBUTES:
        return None
    element = _REFUSED_ELEMENT_SELECTOR.search(selector)
    if element:
        return f"URL attributes of {element.group(1).lower()} elements cannot be set"
    return _refused_url(lowered, value)


def _check_selector(selector: str) -> str:
    if not selector.strip():
        raise ValueError("A selector must not be blank.")
    return selector


def _check_class_name(name: str) -> str:
    if not name or any(c.isspace() for c in name):
        raise ValueError("A class name is one non-empty word without whitespace.")
    return name


#: A CSS selector: a non-blank string of at most :data:`MAX_SELECTOR_LENGTH` characters.
Selector = Annotated[
    str, Field(min_length=1, max_length=MAX_SELECTOR_LENGTH), AfterValidator(_check_selector)
]

#: One CSS class name (no whitespace).
ClassName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_check_class_name)]

#: The level of a ``dom.notice``.
NoticeLevel = Literal["info", "success", "warning", "error"]


class SelectorSchema(BaseModel):
    """Payload ``{"selector"}``: the elements an action applies to (``document.querySelectorAll``)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    selector: Selector


class TextSchema(SelectorSchema):
    """Payload ``{"selector", "text"}``: plain text, never parsed as HTML."""

    text: str


class HtmlSchema(SelectorSchema):
    """Payload ``{"selector", "html"}``: markup inserted as HTML. **Trusted server content only.**"""

    html: str


class ValueSchema(SelectorSchema):
    """Payload ``{"selector", "value"}``: the new value of a form field."""

    value: str


class ClassSchema(SelectorSchema):
    """Payload ``{"selector", "class_name"}``: one CSS class."""

    class_name: ClassName


class AttrSchema(SelectorSchema):
    """Payload ``{"selector", "name", "value"}``: set an attribute, or remove it when ``value`` is None.

    Refused (:func:`unsafe_attribute`): names that are not attribute names, event handlers (``on*``),
    :data:`REFUSED_ATTRIBUTES`, and values of URL attributes (:data:`URL_ATTRIBUTES`) with a scheme
    not in :data:`URL_SCHEMES` or on an element of :data:`URL_REFUSED_ELEMENTS`.
    """

    name: str = Field(min_length=1, max_length=200)
    value: str | None

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not _ATTRIBUTE_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid attribute name.")
        why = unsafe_attribute(name)
        if why:
            raise ValueError(f"{why[0].upper()}{why[1:]}.")
        return name

    @model_validator(mode="after")
    def _safe_url(self) -> AttrSchema:
        why = unsafe_attribute(self.name, self.value, self.selector)
        if why:
            raise ValueError(f"{why[0].upper()}{why[1:]}.")
        return self


class NoticeSchema(BaseModel):
    """Payload ``{"text", "level"}``: a short message shown to the user (plain text)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    text: str
    level: NoticeLevel = "info"


# -- message classes ----------------------------------------------------------------------------------


@outgoing.register
class DomText(Message):
    """``dom.text``: set the ``textContent`` of the matching elements."""

    name = "dom.text"
    schema = TextSchema


@outgoing.register
class DomHtml(Message):
    """``dom.html``: replace the ``innerHTML`` of the matching elements.

    **DANGER: TRUSTED SERVER-RENDERED HTML ONLY.** The markup is inserted as is; a user-supplied
    string in it is a cross-site scripting hole. Render it with Django templates (autoescaping on)
    or ``format_html``, or use ``dom.text`` for text.
    """

    name = "dom.html"
    schema = HtmlSchema


@outgoing.register
class DomAppendHtml(Message):
    """``dom.append_html``: insert markup at the end of the matching elements.

    **DANGER: TRUSTED SERVER-RENDERED HTML ONLY** (see :class:`DomHtml`).
    """

    name = "dom.append_html"
    schema = HtmlSchema


@outgoing.register
class DomPrependHtml(Message):
    """``dom.prepend_html``: insert markup at the start of the matching elements.

    **DANGER: TRUSTED SERVER-RENDERED HTML ONLY** (see :class:`DomHtml`).
    """

    name = "dom.prepend_html"
    schema = HtmlSchema


@outgoing.register
class DomAppend(Message):
    """``dom.append``: add text (a text node) at the end of the matching elements."""

    name = "dom.append"
    schema = TextSchema


@outgoing.register
class DomPrepend(Message):
    """``dom.prepend``: add text (a text node) at the start of the matching elements."""

    name = "dom.prepend"
    schema = TextSchema


@outgoing.register
class DomRemove(Message):
    """``dom.remove``: remove the matching elements."""

    name = "dom.remove"
    schema = SelectorSchema


@outgoing.register
class DomAttr(Message):
    """``dom.attr``: set an attribute of the matching elements (``value`` None removes it)."""

    name = "dom.attr"
    schema = AttrSchema


@outgoing.register
class DomAddClass(Message):
    """``dom.add_class``: add a CSS class to the matching elements."""

    name = "dom.add_class"
    schema = ClassSchema


@outgoing.register
class DomRemoveClass(Message):
    """``dom.remove_class``: remove a CSS class from the matching elements."""

    name = "dom.remove_class"
    schema = ClassSchema


@outgoing.register
class DomValue(Message):
    """``dom.value``: set the value of the matching form fields."""

    name = "dom.value"
    schema = ValueSchema


@outgoing.register
class DomFocus(Message):
    """``dom.focus``: focus the first matching element."""

    name = "dom.focus"
    schema = SelectorSchema


@outgoing.register
class DomScroll(Message):
    """``dom.scroll``: scroll the first matching element into view."""

    name = "dom.scroll"
    schema = SelectorSchema


@outgoing.register
class DomNotice(Message):
    """``dom.notice``: show a short notice (plain text) with a level: info, success, warning or error."""

    name = "dom.notice"
    schema = NoticeSchema


# -- helpers: dom.text("#count", 5) ---------------------------------------------------------------------


def text(selector: str, text: str | float) -> DomText:
    """``dom.text``: set the text of the elements matching ``selector`` (numbers become strings)."""
    return DomText(selector=selector, text=text)


def html(selector: str, html: str) -> DomHtml:
    """``dom.html``: replace the inner HTML of the matching elements. **Trusted server HTML only.**"""
    return DomHtml(selector=selector, html=html)


def append_html(selector: str, html: str) -> DomAppendHtml:
    """``dom.append_html``: append markup to the matching elements. **Trusted server HTML only.**"""
    return DomAppendHtml(selector=selector, html=html)


def prepend_html(selector: str, html: str) -> DomPrependHtml:
    """``dom.prepend_html``: prepend markup to the matching elements. **Trusted server HTML only.**"""
    return DomPrependHtml(selector=selector, html=html)


def append(selector: str, text: str | float) -> DomAppend:
    """``dom.append``: append ``text`` as a text node to the matching elements."""
    return DomAppend(selector=selector, text=text)


def prepend(selector: str, text: str | float) -> DomPrepend:
    """``dom.prepend``: prepend ``text`` as a text node to the matching elements."""
    return DomPrepend(selector=selector, text=text)


def remove(selector: str) -> DomRemove:
    """``dom.remove``: remove the matching elements."""
    return DomRemove(selector=selector)


def attr(selector: str, name: str, value: str | float | None) -> DomAttr:
    """``dom.attr``: set attribute ``name`` of the matching elements; ``value=None`` removes it."""
    return DomAttr(selector=selector, name=name, value=value)


def add_class(selector: str, class_name: str) -> DomAddClass:
    """``dom.add_class``: add CSS class ``class_name`` to the matching elements."""
    return DomAddClass(selector=selector, class_name=class_name)


def remove_class(selector: str, class_name: str) -> DomRemoveClass:
    """``dom.remove_class``: remove CSS class ``class_name`` from the matching elements."""
    return DomRemoveClass(selector=selector, class_name=class_name)


def value(selector: str, value: str | float) -> DomValue:
    """``dom.value``: set the value of the matching form fields (numbers become strings)."""
    return DomValue(selector=selector, value=value)


def focus(selector: str) -> DomFocus:
    """``dom.focus``: focus the first element matching ``selector``."""
    return DomFocus(selector=selector)


def scroll(selector: str) -> DomScroll:
    """``dom.scroll``: scroll the first element matching ``selector`` into view."""
    return DomScroll(selector=selector)


def notice(text: str, level: NoticeLevel = "info") -> DomNotice:
    """``dom.notice``: show ``text`` as a notice; ``level`` is info, success, warning or error."""
    return DomNotice(text=text, level=level)
