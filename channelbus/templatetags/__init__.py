"""Template tags of channelbus: ``{% load channelbus %}``."""
