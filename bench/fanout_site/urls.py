"""No HTTP views: the benchmark only opens WebSockets."""

urlpatterns: list = []
